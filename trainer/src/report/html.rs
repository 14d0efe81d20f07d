//! Renders a [`Document`] as one self-contained HTML page: an inline stylesheet, no scripts, every
//! image embedded as a `data:` URI, so the file opens offline and can be mailed on its own. All
//! text is escaped.

use std::collections::BTreeMap;
use std::fmt::Write;

use base64::Engine;

use crate::report::doc::{Block, Cell, Column, Document, Image, Inline, Layout, Row};

const STYLE: &str = "
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', Arial, sans-serif; color: #1f2328;
  max-width: 1320px; margin: 0 auto; padding: 1rem 2rem 4rem; line-height: 1.5; font-size: 15px; background: #fff; }
h1 { font-size: 1.8rem; margin: 0.5rem 0 0.25rem; }
h2 { font-size: 1.4rem; margin: 2.5rem 0 0.5rem; padding-bottom: 0.25rem; border-bottom: 2px solid #d0d7de; }
h3 { font-size: 1.1rem; margin: 1.75rem 0 0.5rem; }
p, ul { max-width: 62rem; }
li { margin: 0.25rem 0; }
code { font-family: ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: 0.9em; background: #f3f4f6;
  padding: 0 0.25em; border-radius: 3px; }
.caveat { color: #9a4a00; }
nav.contents { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; padding: 0.5rem 1rem; display: inline-block; }
nav.contents ol { margin: 0.25rem 0; padding-left: 1.25rem; }
.table-wrap { overflow-x: auto; margin: 0.5rem 0 1rem; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e5e7eb; text-align: right; vertical-align: top; }
th { background: #f3f4f6; position: sticky; top: 0; font-weight: 600; }
th.label { white-space: nowrap; }
thead tr.groups th { text-align: center; border-bottom: 1px solid #d0d7de; border-left: 2px solid #fff; }
th.label, td.label { text-align: left; white-space: nowrap; }
tr.section td { background: #eef2f7; font-weight: 600; text-align: left; text-transform: capitalize; }
tbody tr:hover td { background: #fafbfc; }
td .value { white-space: nowrap; }
td .ci { display: block; color: #57606a; font-size: 11px; white-space: nowrap; }
td.best .value { font-weight: 700; }
td.best { background: #eaf6ee; }
.images { display: grid; gap: 14px; margin: 0.5rem 0 1rem; }
.images.small { grid-template-columns: repeat(auto-fill, minmax(290px, 1fr)); }
.images.medium { grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); }
.images.single { grid-template-columns: minmax(300px, 800px); }
figure { margin: 0; }
figure img { width: 100%; height: auto; border: 1px solid #e5e7eb; border-radius: 4px; background: #fff; }
figure img.pixelated { image-rendering: pixelated; max-width: 300px; }
figcaption { font-size: 12px; color: #57606a; margin-top: 2px; }
details { margin: 0.5rem 0 1rem; }
summary { cursor: pointer; font-weight: 600; }
";

/// The page; `images` holds the bytes of every image the document shows, by its path.
pub fn render(document: &Document, images: &BTreeMap<String, Vec<u8>>) -> String {
    let mut html = String::new();
    html.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(html, "<title>{}</title>", escape(&document.title));
    let _ = writeln!(html, "<style>{STYLE}</style>\n</head>\n<body>");
    let _ = writeln!(html, "<h1>{}</h1>", escape(&document.title));
    for block in &document.blocks {
        block_html(&mut html, block, images);
    }
    html.push_str("</body>\n</html>\n");
    html
}

fn block_html(html: &mut String, block: &Block, images: &BTreeMap<String, Vec<u8>>) {
    match block {
        Block::Heading { level, text, anchor } => {
            let level = (*level).clamp(1, 4) + 1;
            let _ =
                writeln!(html, "<h{level} id=\"{}\">{}</h{level}>", escape(anchor), escape(text));
        }
        Block::Paragraph(inlines) => {
            let _ = writeln!(html, "<p>{}</p>", inlines_html(inlines));
        }
        Block::Bullets(items) => {
            html.push_str("<ul>\n");
            for item in items {
                let _ = writeln!(html, "<li>{}</li>", inlines_html(item));
            }
            html.push_str("</ul>\n");
        }
        Block::Table { columns, rows } => table_html(html, columns, rows),
        Block::Images(list, layout) => {
            let class = match layout {
                Layout::Small => "small",
                Layout::Medium => "medium",
                Layout::Single => "single",
            };
            let _ = writeln!(html, "<div class=\"images {class}\">");
            for image in list {
                image_html(html, image, images);
            }
            html.push_str("</div>\n");
        }
        Block::Folded { summary, blocks } => {
            let _ = writeln!(html, "<details>\n<summary>{}</summary>", escape(summary));
            for block in blocks {
                block_html(html, block, images);
            }
            html.push_str("</details>\n");
        }
        Block::Contents(entries) => {
            html.push_str("<nav class=\"contents\"><strong>Contents</strong>\n<ol>\n");
            for (title, anchor) in entries {
                let _ = writeln!(
                    html,
                    "<li><a href=\"#{}\">{}</a></li>",
                    escape(anchor),
                    escape(title)
                );
            }
            html.push_str("</ol>\n</nav>\n");
        }
    }
}

fn image_html(html: &mut String, image: &Image, images: &BTreeMap<String, Vec<u8>>) {
    let source = match images.get(&image.path) {
        Some(bytes) => format!(
            "data:{};base64,{}",
            mime_type(&image.path),
            base64::engine::general_purpose::STANDARD.encode(bytes)
        ),
        None => escape(&image.path),
    };
    let _ = writeln!(
        html,
        "<figure><img src=\"{source}\" alt=\"{alt}\"{class}><figcaption>{alt}</figcaption></figure>",
        alt = escape(&image.caption),
        class = if image.pixelated { " class=\"pixelated\"" } else { "" },
    );
}

fn mime_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

fn table_html(html: &mut String, columns: &[Column], rows: &[Row]) {
    html.push_str("<div class=\"table-wrap\"><table>\n<thead>\n");
    if columns.iter().any(|column| column.group.is_some()) {
        html.push_str("<tr class=\"groups\">");
        let mut idx = 0;
        while idx < columns.len() {
            let group = &columns[idx].group;
            let span = columns[idx..].iter().take_while(|column| &column.group == group).count();
            let _ = write!(
                html,
                "<th colspan=\"{span}\">{}</th>",
                escape(group.as_deref().unwrap_or(""))
            );
            idx += span;
        }
        html.push_str("</tr>\n");
    }
    html.push_str("<tr>");
    for column in columns {
        // Long metric names may wrap after an underscore rather than widen the table.
        let _ = write!(
            html,
            "<th{}>{}</th>",
            if column.label { " class=\"label\"" } else { "" },
            escape(&column.title).replace('_', "_<wbr>")
        );
    }
    html.push_str("</tr>\n</thead>\n<tbody>\n");
    for row in rows {
        match row {
            Row::Section(title) => {
                let _ = writeln!(
                    html,
                    "<tr class=\"section\"><td colspan=\"{}\">{}</td></tr>",
                    columns.len(),
                    escape(title)
                );
            }
            Row::Cells(cells) => {
                html.push_str("<tr>");
                for (idx, cell) in cells.iter().enumerate() {
                    let is_label = columns.get(idx).is_some_and(|column| column.label);
                    cell_html(html, cell, is_label);
                }
                html.push_str("</tr>\n");
            }
        }
    }
    html.push_str("</tbody>\n</table></div>\n");
}

fn cell_html(html: &mut String, cell: &Cell, is_label: bool) {
    let label_class = if is_label { " class=\"label\"" } else { "" };
    match cell {
        Cell::Text(text) => {
            let _ = write!(html, "<td{label_class}>{}</td>", escape(text));
        }
        Cell::Empty => {
            let _ = write!(html, "<td{label_class}>–</td>");
        }
        Cell::Figure { value, interval, note, best } => {
            let _ = write!(
                html,
                "<td{}><span class=\"value\">{}</span><span class=\"ci\">{}</span>{}</td>",
                if *best { " class=\"best\"" } else { "" },
                escape(value),
                escape(interval),
                note.as_ref()
                    .map(|note| format!("<span class=\"ci\">{}</span>", escape(note)))
                    .unwrap_or_default(),
            );
        }
    }
}

fn inlines_html(inlines: &[Inline]) -> String {
    inlines
        .iter()
        .map(|inline| match inline {
            Inline::Text(text) => escape(text),
            Inline::Strong(text) => format!("<strong>{}</strong>", escape(text)),
            Inline::Code(text) => format!("<code>{}</code>", escape(text)),
            Inline::Caveat(text) => format!("<span class=\"caveat\">{}</span>", escape(text)),
        })
        .collect()
}

/// Text safe inside an element and inside a double-quoted attribute.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(ch),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_data_is_escaped_everywhere_it_lands() {
        let hostile = "<script>alert(\"x\")</script> & 'q'";
        let document = Document {
            title: hostile.to_owned(),
            blocks: vec![
                Block::Heading { level: 1, text: hostile.to_owned(), anchor: "a\"b".to_owned() },
                Block::Table {
                    columns: vec![Column {
                        group: Some(hostile.to_owned()),
                        title: hostile.to_owned(),
                        label: true,
                    }],
                    rows: vec![
                        Row::Cells(vec![Cell::Text(hostile.to_owned())]),
                        Row::Section(hostile.to_owned()),
                    ],
                },
                Block::Images(
                    vec![Image {
                        path: "x<y>.svg".to_owned(),
                        caption: hostile.to_owned(),
                        pixelated: false,
                    }],
                    Layout::Small,
                ),
            ],
        };
        let html = render(&document, &BTreeMap::new());
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("a\"b"));
        assert!(!html.contains("x<y>"));
        assert_eq!(
            html.matches("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;")
                .count(),
            9
        );
    }
}
