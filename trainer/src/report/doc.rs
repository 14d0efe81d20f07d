//! The report as a small document tree, written once and rendered twice: to HTML (self-contained,
//! images embedded) and to Markdown (images linked). Text here is plain: each renderer escapes it
//! for its own format.

/// A run of text with its emphasis.
#[derive(Debug, Clone, PartialEq)]
pub enum Inline {
    Text(String),
    Strong(String),
    Code(String),
    /// A caveat, set apart in colour in HTML.
    Caveat(String),
}

pub fn text(value: impl Into<String>) -> Inline {
    Inline::Text(value.into())
}

pub fn strong(value: impl Into<String>) -> Inline {
    Inline::Strong(value.into())
}

pub fn code(value: impl Into<String>) -> Inline {
    Inline::Code(value.into())
}

pub fn caveat(value: impl Into<String>) -> Inline {
    Inline::Caveat(value.into())
}

/// A table cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    /// A figure with its interval (and spread across seeds), already formatted.
    Figure {
        value: String,
        interval: String,
        note: Option<String>,
        best: bool,
    },
    Empty,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// A heading over consecutive columns with the same group.
    pub group: Option<String>,
    pub title: String,
    /// Left-aligned (labels) rather than right-aligned (numbers).
    pub label: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    Cells(Vec<Cell>),
    /// A heading row across the whole table.
    Section(String),
}

/// An image beside the report: `path` is relative to the report folder.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub path: String,
    pub caption: String,
    /// Show pixels as they are when enlarged (sample grids).
    pub pixelated: bool,
}

/// How a block of images is laid out in HTML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Small multiples, about four to a row.
    Small,
    /// About two to a row.
    Medium,
    /// One chart at about its drawn size.
    Single,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// Level 1 to 3, with an anchor for links.
    Heading {
        level: u8,
        text: String,
        anchor: String,
    },
    Paragraph(Vec<Inline>),
    Bullets(Vec<Vec<Inline>>),
    Table {
        columns: Vec<Column>,
        rows: Vec<Row>,
    },
    Images(Vec<Image>, Layout),
    /// Shown folded in HTML (click to open), in full in Markdown.
    Folded {
        summary: String,
        blocks: Vec<Block>,
    },
    /// Links to the level-2 headings.
    Contents(Vec<(String, String)>),
}

/// The whole report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    pub title: String,
    pub blocks: Vec<Block>,
}

impl Document {
    pub fn heading(&mut self, level: u8, text: &str, anchor: &str) {
        self.blocks.push(Block::Heading {
            level,
            text: text.to_owned(),
            anchor: anchor.to_owned(),
        });
    }

    pub fn paragraph(&mut self, inlines: Vec<Inline>) {
        self.blocks.push(Block::Paragraph(inlines));
    }
}

/// An anchor made of letters, digits, `-` and `_` only.
pub fn anchor(parts: &[&str]) -> String {
    parts.iter().map(|part| file_safe(part)).collect::<Vec<_>>().join("-")
}

/// `text` with every character outside `[A-Za-z0-9._-]` replaced by `_`: safe in a file name and
/// a URL path without escaping.
pub fn file_safe(text: &str) -> String {
    let safe: String = text
        .chars()
        .map(
            |ch| if ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-') { ch } else { '_' },
        )
        .collect();
    if safe.is_empty() || safe.starts_with('.') { format!("_{safe}") } else { safe }
}
