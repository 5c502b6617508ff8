//! A monthly statement as a PDF: A4 pages of text in the standard
//! Helvetica fonts (every reader has them, so nothing is embedded), laid out
//! first into pages of rows so that each page can say "page i of n".
//! Content streams are left uncompressed: a statement is a few kilobytes of
//! text, and tests (and support staff) can read the figures in the bytes.

use chrono::{DateTime, SecondsFormat, Utc};
use marketplace_domain::wallet::{tft_with_seven_decimals, EntryKind, Statement};
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

/// A4, in points.
const PAGE_WIDTH: f32 = 595.0;
const PAGE_HEIGHT: f32 = 842.0;
const MARGIN: f32 = 50.0;
const LINE: f32 = 14.0;
/// Rows on a page between the top margin and the footer.
const ROWS_PER_PAGE: usize = ((PAGE_HEIGHT - 2.0 * MARGIN - 2.0 * LINE) / LINE) as usize;
/// Longest reference shown; Stripe ids may be 255 characters.
const MAX_REFERENCE: usize = 60;

const REGULAR: Name<'static> = Name(b"F1");
const BOLD: Name<'static> = Name(b"F2");

/// One line of the statement.
#[derive(Debug, Clone, PartialEq)]
enum Row {
    /// A title or section heading.
    Heading(String),
    /// Text on the left, an amount right-aligned; bold for totals.
    Amount {
        label: String,
        amount: i128,
        bold: bool,
    },
    /// Text alone.
    Text(String),
    /// An empty line.
    Blank,
}

fn amount(label: impl Into<String>, amount: i128) -> Row {
    Row::Amount {
        label: label.into(),
        amount,
        bold: false,
    }
}

fn total(label: impl Into<String>, amount: i128) -> Row {
    Row::Amount {
        label: label.into(),
        amount,
        bold: true,
    }
}

fn kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::TopUp => "top-up",
        EntryKind::Debit => "debit",
        EntryKind::Refund => "refund",
        EntryKind::Dispute => "dispute",
        EntryKind::Bill => "bill",
        EntryKind::SlaCredit => "SLA credit",
    }
}

/// Printable ASCII only (the fonts' standard encoding), cut to `max`.
fn plain(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(max)
        .collect();
    if text.chars().count() > max {
        out.push_str("...");
    }
    out
}

fn instant(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The statement's rows, top to bottom. Money going out is shown negative.
fn rows(s: &Statement, wallet_id: &str, generated_at: DateTime<Utc>) -> Vec<Row> {
    let mut rows = vec![
        Row::Heading(format!("Wallet statement {}", s.month)),
        Row::Text(format!("Wallet: {}", plain(wallet_id, 80))),
        Row::Text(format!(
            "Period: {} to {} (exclusive)",
            instant(s.month.start()),
            instant(s.month.end())
        )),
        Row::Text(format!(
            "Generated: {}",
            generated_at.to_rfc3339_opts(SecondsFormat::Secs, true)
        )),
        Row::Text("Amounts in TFT (1 TFT = 10,000,000 base units).".into()),
        Row::Blank,
        total("Opening balance", s.opening_balance),
        Row::Blank,
        Row::Heading("Credits".into()),
    ];
    if s.credits.is_empty() {
        rows.push(Row::Text("No credits this month.".into()));
    }
    for l in &s.credits {
        rows.push(amount(
            format!(
                "{}  {}  {}",
                instant(l.at),
                kind_name(l.kind),
                plain(&l.reference, MAX_REFERENCE)
            ),
            l.amount,
        ));
    }
    rows.push(total("Total credits", s.total_credits));
    rows.push(Row::Blank);
    rows.push(Row::Heading("Bills".into()));
    if s.bills.is_empty() {
        rows.push(Row::Text("No bills this month.".into()));
    }
    for d in &s.bills {
        rows.push(amount(
            format!("Deployment {}", plain(&d.reference, MAX_REFERENCE)),
            -d.total,
        ));
        for c in &d.contracts {
            let bills = if c.count == 1 { "bill" } else { "bills" };
            rows.push(amount(
                format!("      Contract {}: {} {bills}", c.contract_id, c.count),
                -c.total,
            ));
        }
    }
    rows.push(total("Total bills", -s.total_bills));
    rows.push(Row::Blank);
    rows.push(Row::Heading("Other debits".into()));
    if s.other_debits.is_empty() {
        rows.push(Row::Text("No other debits this month.".into()));
    }
    for l in &s.other_debits {
        rows.push(amount(
            format!(
                "{}  {}  {}",
                instant(l.at),
                kind_name(l.kind),
                plain(&l.reference, MAX_REFERENCE)
            ),
            -l.amount,
        ));
    }
    rows.push(total("Total other debits", -s.total_other_debits));
    rows.push(Row::Blank);
    rows.push(total("Closing balance", s.closing_balance));
    rows
}

/// Helvetica's advance widths (per 1000 em) of what amounts are made of;
/// the rest is never right-aligned, so an average does.
fn helvetica_width(text: &str, size: f32) -> f32 {
    let units: u32 = text
        .bytes()
        .map(|b| match b {
            b'0'..=b'9' => 556,
            b'.' | b' ' => 278,
            b'-' => 333,
            _ => 556,
        })
        .sum();
    units as f32 * size / 1000.0
}

fn text_at(content: &mut Content, font: Name<'_>, size: f32, x: f32, y: f32, text: &str) {
    content.begin_text();
    content.set_font(font, size);
    content.next_line(x, y);
    content.show(Str(text.as_bytes()));
    content.end_text();
}

/// One page's content stream.
fn page_content(rows: &[Row], page: usize, pages: usize, footer: &str) -> Vec<u8> {
    let mut content = Content::new();
    let mut y = PAGE_HEIGHT - MARGIN;
    for row in rows {
        match row {
            Row::Heading(text) => text_at(&mut content, BOLD, 12.0, MARGIN, y, text),
            Row::Text(text) => text_at(&mut content, REGULAR, 10.0, MARGIN, y, text),
            Row::Amount {
                label,
                amount,
                bold,
            } => {
                let font = if *bold { BOLD } else { REGULAR };
                text_at(&mut content, font, 10.0, MARGIN, y, label);
                let figure = tft_with_seven_decimals(*amount);
                let x = PAGE_WIDTH - MARGIN - helvetica_width(&figure, 10.0);
                text_at(&mut content, font, 10.0, x, y, &figure);
            }
            Row::Blank => {}
        }
        y -= LINE;
    }
    let footer = format!("{footer}  -  page {page} of {pages}");
    text_at(&mut content, REGULAR, 8.0, MARGIN, MARGIN, &footer);
    content.finish().into_vec()
}

/// The statement of `wallet_id` as a PDF document.
pub fn render(s: &Statement, wallet_id: &str, generated_at: DateTime<Utc>) -> Vec<u8> {
    let rows = rows(s, wallet_id, generated_at);
    let chunks: Vec<&[Row]> = rows.chunks(ROWS_PER_PAGE).collect();
    let pages = chunks.len();
    let footer = format!("Statement {} of wallet {}", s.month, plain(wallet_id, 60));

    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular = Ref::new(3);
    let bold = Ref::new(4);
    let info = Ref::new(5);
    // Each page is followed by its content stream.
    let page_ref = |i: usize| Ref::new(6 + 2 * i32::try_from(i).unwrap_or(i32::MAX / 4));
    let content_ref = |i: usize| Ref::new(page_ref(i).get() + 1);

    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids((0..pages).map(page_ref))
        .count(i32::try_from(pages).unwrap_or(i32::MAX));
    pdf.type1_font(regular).base_font(Name(b"Helvetica"));
    pdf.type1_font(bold).base_font(Name(b"Helvetica-Bold"));
    let title = format!("Wallet statement {}", s.month);
    pdf.document_info(info)
        .title(TextStr(&title))
        .producer(TextStr("ThreeFold marketplace"));
    for (i, chunk) in chunks.iter().enumerate() {
        let mut page = pdf.page(page_ref(i));
        page.media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT));
        page.parent(tree);
        page.contents(content_ref(i));
        let mut resources = page.resources();
        resources.fonts().pair(REGULAR, regular).pair(BOLD, bold);
        resources.finish();
        page.finish();
        pdf.stream(content_ref(i), &page_content(chunk, i + 1, pages, &footer));
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use marketplace_domain::wallet::{
        ContractBills, DeploymentBills, StatementLine, StatementMonth,
    };

    use super::*;

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    fn statement(bills: usize) -> Statement {
        let at = Utc
            .with_ymd_and_hms(2026, 11, 3, 9, 0, 0)
            .single()
            .expect("valid");
        let deployments: Vec<DeploymentBills> = (0..bills)
            .map(|i| DeploymentBills {
                reference: format!("dep-{i:03}"),
                contracts: vec![ContractBills {
                    contract_id: 100 + i as u64,
                    count: 720,
                    total: 20_000_000,
                }],
                total: 20_000_000,
            })
            .collect();
        let total_bills = deployments.iter().map(|d| d.total).sum();
        let opening = 1_000_000_000;
        Statement {
            month: StatementMonth::new(2026, 11).expect("valid"),
            opening_balance: opening,
            credits: vec![StatementLine {
                kind: EntryKind::TopUp,
                reference: "pi_(1)".into(),
                at,
                amount: 5_000_000_000,
            }],
            other_debits: vec![StatementLine {
                kind: EntryKind::Refund,
                reference: "re_1".into(),
                at,
                amount: 1,
            }],
            bills: deployments,
            total_credits: 5_000_000_000,
            total_bills,
            total_other_debits: 1,
            closing_balance: opening + 5_000_000_000 - total_bills - 1,
        }
    }

    fn generated() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0)
            .single()
            .expect("valid")
    }

    #[test]
    fn a_statement_renders_as_a_pdf_with_its_totals_in_the_text() {
        let s = statement(2);
        let pdf = render(&s, "alice", generated());

        assert!(pdf.starts_with(b"%PDF-"));
        let end = pdf.trim_ascii_end();
        assert!(end.ends_with(b"%%EOF"));
        for text in [
            "Wallet statement 2026-11",
            "Wallet: alice",
            "Generated: 2026-12-01T08:00:00Z",
            "Opening balance",
            "100.0000000",
            "Total credits",
            "500.0000000",
            "Deployment dep-001",
            "Contract 101: 720 bills",
            "Total bills",
            "-4.0000000",
            "Total other debits",
            "-0.0000001",
            "Closing balance",
            "595.9999999",
            "page 1 of 1",
        ] {
            assert!(contains(&pdf, text), "{text:?} must be in the PDF");
        }
    }

    #[test]
    fn a_long_statement_runs_over_several_pages() {
        let s = statement(200);
        let pdf = render(&s, "alice", generated());

        let pages = rows(&s, "alice", generated()).len().div_ceil(ROWS_PER_PAGE);
        assert!(pages > 1);
        assert!(contains(&pdf, &format!("/Count {pages}")));
        assert!(contains(&pdf, &format!("page {pages} of {pages}")));
        assert!(contains(&pdf, "Deployment dep-199"));
        assert!(pdf.trim_ascii_end().ends_with(b"%%EOF"));
    }

    #[test]
    fn references_are_printable_ascii_and_cut_to_fit() {
        assert_eq!(plain("dép", 60), "d?p");
        assert_eq!(plain(&"x".repeat(70), 60), format!("{}...", "x".repeat(60)));
    }
}
