//! Downloads of a page's rows: CSV (RFC 4180) and XLSX, both defused
//! against formula injection, neither cached.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_xlsxwriter::{Format, Workbook};

use super::ConsoleError;

/// A table to download.
pub struct Table<'a> {
    /// The file's name without its extension.
    pub name: &'a str,
    /// Column headings.
    pub headings: &'a [&'a str],
    /// The rows, each as many cells as headings.
    pub rows: Vec<Vec<String>>,
}

fn attachment(body: Vec<u8>, content_type: &'static str, file: &str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

/// The table in the format the query string asks for: `format=xlsx`, or
/// CSV.
pub fn respond(raw: Option<&str>, t: &Table<'_>) -> Result<Response, ConsoleError> {
    if super::query_pairs(raw)
        .iter()
        .any(|(k, v)| k == "format" && v == "xlsx")
    {
        xlsx(t)
    } else {
        Ok(csv(t))
    }
}

/// The table as CSV, lines ended with CRLF (RFC 4180 §2).
fn csv(t: &Table<'_>) -> Response {
    let mut out = crate::csv::line(t.headings);
    out.push_str("\r\n");
    for r in &t.rows {
        out.push_str(&crate::csv::line(r));
        out.push_str("\r\n");
    }
    attachment(out.into_bytes(), "text/csv; charset=utf-8", &format!("{}.csv", t.name))
}

/// The table as an XLSX workbook of one sheet, headings bold and frozen.
fn xlsx(t: &Table<'_>) -> Result<Response, ConsoleError> {
    let failed = |e: rust_xlsxwriter::XlsxError| {
        ConsoleError::Refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the workbook could not be written: {e}"),
        )
    };
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name(t.name).map_err(failed)?;
    let bold = Format::new().set_bold();
    for (c, h) in t.headings.iter().enumerate() {
        let c =
            u16::try_from(c).map_err(|_| ConsoleError::Refused(StatusCode::BAD_REQUEST, "too many columns".into()))?;
        sheet.write_string_with_format(0, c, *h, &bold).map_err(failed)?;
    }
    for (r, row) in t.rows.iter().enumerate() {
        let r =
            u32::try_from(r + 1).map_err(|_| ConsoleError::Refused(StatusCode::BAD_REQUEST, "too many rows".into()))?;
        for (c, v) in row.iter().enumerate() {
            let c = u16::try_from(c)
                .map_err(|_| ConsoleError::Refused(StatusCode::BAD_REQUEST, "too many columns".into()))?;
            // Written as strings: a spreadsheet never evaluates them.
            sheet.write_string(r, c, v).map_err(failed)?;
        }
    }
    sheet.set_freeze_panes(1, 0).map_err(failed)?;
    sheet.autofit();
    let bytes = book.save_to_buffer().map_err(failed)?;
    Ok(attachment(
        bytes,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        &format!("{}.xlsx", t.name),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_workbook_is_a_zip_with_the_sheet() {
        let t = Table {
            name: "agents",
            headings: &["name", "owner"],
            rows: vec![vec!["=1+1".into(), "alice".into()]],
        };
        let res = xlsx(&t).unwrap();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        assert_eq!(&body[..2], b"PK", "an XLSX file is a zip archive");
    }
}
