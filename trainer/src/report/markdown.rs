//! Renders a [`Document`] as Markdown (GitHub flavour): images are links to the files beside the
//! report, folded blocks are shown in full, and text is escaped where Markdown would read it as
//! markup.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::report::doc::{Block, Cell, Column, Document, Inline, Row};

pub fn render(document: &Document) -> String {
    let mut slugs = BTreeMap::new();
    collect_slugs(&document.blocks, &mut slugs);
    let mut markdown = format!("# {}\n\n", escape(&document.title));
    for block in &document.blocks {
        block_markdown(&mut markdown, block, &slugs);
    }
    markdown
}

/// Each heading's anchor as GitHub derives it from the heading's text, by the anchor the
/// document gave it (links in the contents point there).
fn collect_slugs(blocks: &[Block], slugs: &mut BTreeMap<String, String>) {
    for block in blocks {
        match block {
            Block::Heading { text, anchor, .. } => {
                slugs.insert(anchor.clone(), slug(text));
            }
            Block::Folded { blocks, .. } => collect_slugs(blocks, slugs),
            _ => {}
        }
    }
}

/// GitHub's heading anchor: lower case, spaces to `-`, punctuation other than `-` and `_` dropped.
fn slug(text: &str) -> String {
    text.chars()
        .filter_map(|ch| match ch {
            ' ' => Some('-'),
            '-' | '_' => Some(ch),
            _ if ch.is_alphanumeric() => Some(ch),
            _ => None,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

fn block_markdown(markdown: &mut String, block: &Block, slugs: &BTreeMap<String, String>) {
    match block {
        Block::Heading { level, text, .. } => {
            let _ = writeln!(
                markdown,
                "{} {}\n",
                "#".repeat(usize::from((*level).clamp(1, 4)) + 1),
                escape(text)
            );
        }
        Block::Paragraph(inlines) => {
            let _ = writeln!(markdown, "{}\n", inlines_markdown(inlines));
        }
        Block::Bullets(items) => {
            for item in items {
                let _ = writeln!(markdown, "- {}", inlines_markdown(item));
            }
            markdown.push('\n');
        }
        Block::Table { columns, rows } => table_markdown(markdown, columns, rows),
        Block::Images(images, _) => {
            for image in images {
                let _ = writeln!(markdown, "![{}]({})", escape(&image.caption), image.path);
            }
            markdown.push('\n');
        }
        Block::Folded { summary, blocks } => {
            let _ = writeln!(markdown, "**{}**\n", escape(summary));
            for block in blocks {
                block_markdown(markdown, block, slugs);
            }
        }
        Block::Contents(entries) => {
            for (idx, (title, anchor)) in entries.iter().enumerate() {
                let target = slugs.get(anchor).unwrap_or(anchor);
                let _ = writeln!(markdown, "{}. [{}](#{target})", idx + 1, escape(title));
            }
            markdown.push('\n');
        }
    }
}

fn table_markdown(markdown: &mut String, columns: &[Column], rows: &[Row]) {
    let titles: Vec<String> = columns
        .iter()
        .map(|column| match &column.group {
            Some(group) if !group.is_empty() => {
                format!("{} · {}", cell_text(group), cell_text(&column.title))
            }
            _ => cell_text(&column.title),
        })
        .collect();
    let _ = writeln!(markdown, "| {} |", titles.join(" | "));
    let rules: Vec<&str> =
        columns.iter().map(|column| if column.label { ":---" } else { "---:" }).collect();
    let _ = writeln!(markdown, "| {} |", rules.join(" | "));
    for row in rows {
        let cells: Vec<String> = match row {
            Row::Section(title) => {
                let mut cells = vec![format!("**{}**", cell_text(title))];
                cells.resize(columns.len().max(1), String::new());
                cells
            }
            Row::Cells(cells) => cells
                .iter()
                .map(|cell| match cell {
                    Cell::Text(text) => cell_text(text),
                    Cell::Empty => "–".to_owned(),
                    Cell::Figure { value, interval, note, best } => {
                        let value = if *best {
                            format!("**{}**", cell_text(value))
                        } else {
                            cell_text(value)
                        };
                        let note = note
                            .as_ref()
                            .map(|note| format!(" {}", cell_text(note)))
                            .unwrap_or_default();
                        format!("{value} {}{note}", cell_text(interval))
                    }
                })
                .collect(),
        };
        let _ = writeln!(markdown, "| {} |", cells.join(" | "));
    }
    markdown.push('\n');
}

/// Text inside a table cell: escaped, with `|` escaped too and line breaks folded.
fn cell_text(text: &str) -> String {
    escape(text).replace('|', "\\|").replace('\n', " ")
}

fn inlines_markdown(inlines: &[Inline]) -> String {
    inlines
        .iter()
        .map(|inline| match inline {
            Inline::Text(text) => escape(text),
            Inline::Strong(text) => emphasise("**", text),
            Inline::Code(text) => format!("`{}`", text.replace('`', "'")),
            Inline::Caveat(text) => emphasise("*", text),
        })
        .collect()
}

/// `text` between `marker`s, with its leading and trailing spaces outside them: `**a **` would
/// not read as emphasis.
fn emphasise(marker: &str, text: &str) -> String {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return text.to_owned();
    }
    let leading = &text[..text.len() - text.trim_start().len()];
    let trailing = &text[text.trim_end().len()..];
    format!("{leading}{marker}{}{marker}{trailing}", escape(trimmed))
}

/// Escapes the characters Markdown would take as emphasis, code, links or HTML. Underscores stay:
/// the names here (`breast_cancer`, `tstr_accuracy`) have them inside words, where GitHub-flavoured
/// Markdown never reads them as emphasis, and they stay searchable as written. Brackets stay too
/// (intervals read `[0.90, 0.95]`) except a `]` followed by `(`, which could close a link.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        let is_markup = match ch {
            '\\' | '*' | '`' | '<' | '>' => true,
            ']' => chars.peek() == Some(&'('),
            _ => false,
        };
        if is_markup {
            escaped.push('\\');
        }
        escaped.push(ch);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_data_is_escaped_and_intervals_are_not() {
        assert_eq!(escape("0.93 [0.90, 0.95]"), "0.93 [0.90, 0.95]");
        assert_eq!(escape("[x](http://a)"), "[x\\](http://a)");
        assert_eq!(escape("a<b>*c*`d`"), "a\\<b\\>\\*c\\*\\`d\\`");
        assert_eq!(escape("breast_cancer"), "breast_cancer");
    }

    #[test]
    fn contents_link_to_the_anchors_github_gives_headings() {
        assert_eq!(
            slug("Dataset breast_cancer (table, label diagnosis)"),
            "dataset-breast_cancer-table-label-diagnosis"
        );
        let document = Document {
            title: "t".to_owned(),
            blocks: vec![
                Block::Contents(vec![("Data".to_owned(), "data-x".to_owned())]),
                Block::Heading {
                    level: 1,
                    text: "Dataset x (images)".to_owned(),
                    anchor: "data-x".to_owned(),
                },
            ],
        };
        assert!(
            render(&document).contains("1. [Data](#dataset-x-images)"),
            "{}",
            render(&document)
        );
    }

    #[test]
    fn emphasis_keeps_spaces_outside_its_markers() {
        assert_eq!(emphasise("*", "may be chance. "), "*may be chance.* ");
        assert_eq!(emphasise("**", " gan"), " **gan**");
        assert_eq!(emphasise("**", " "), " ");
    }
}
