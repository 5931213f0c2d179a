//! Read queries assembled from optional filters (the listings of every
//! concept), served from the read pool, never the writer.

use sqlx::any::AnyRow;

use crate::{Store, StoreError};

/// A bound value in a dynamically built query.
#[derive(Debug)]
pub(crate) enum Arg {
    /// Text (ids, names).
    Text(String),
    /// An integer (times, counts).
    Int(i64),
}

/// A query assembled from optional filters, numbering `$n` as it goes.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    pub(crate) fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            args: Vec::new(),
        }
    }
    /// Appends `clause`, replacing each `?` with the next placeholder for `arg`.
    pub(crate) fn and(&mut self, clause: &str, args: Vec<Arg>) -> &mut Self {
        let mut parts = clause.split('?');
        self.text.push_str(" AND ");
        if let Some(first) = parts.next() {
            self.text.push_str(first);
        }
        for (part, arg) in parts.zip(args) {
            self.args.push(arg);
            self.text.push('$');
            self.text.push_str(&self.args.len().to_string());
            self.text.push_str(part);
        }
        self
    }
    pub(crate) fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }
    pub(crate) fn bind_next(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }
    pub(crate) async fn fetch_all(&self, store: &Store) -> Result<Vec<AnyRow>, StoreError> {
        let mut q = sqlx::query(&self.text);
        for a in &self.args {
            q = match a {
                Arg::Text(s) => q.bind(s.clone()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        Ok(q.fetch_all(&store.inner.read).await?)
    }
}
