//! Keyset pagination with opaque cursors.
//!
//! A cursor is the sort key of the last row of a page, as base64url JSON. Keyset rather than
//! offset pagination, so a page is one index range scan however deep the client goes, and rows
//! inserted meanwhile neither repeat nor vanish. The cursor carries no practice: every list query
//! is scoped by the caller's practice anyway, so a forged cursor only moves within it.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::types::FieldErrors;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 100;

/// The sort key of lists shown newest first: creation time, then id between equal times.
pub type NewestFirst = (DateTime<Utc>, Uuid);

/// One page of a list, in the list's order.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A validated request for one page: its size, and the sort key of the last row already seen.
#[derive(Debug)]
pub struct PageRequest<K> {
    pub limit: i64,
    pub after: Option<K>,
}

impl<K: Serialize + DeserializeOwned> PageRequest<K> {
    /// Reads `limit` (1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`]) and `cursor` from the query
    /// string, last of a list's parameters: what is wrong with them joins the `errors` found in
    /// the others, and any error at all refuses the request.
    pub fn parse(
        mut errors: FieldErrors,
        limit: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<Self, FieldErrors> {
        let limit = match limit.map(str::trim) {
            None | Some("") => Some(DEFAULT_LIMIT),
            Some(text) => errors.check(
                "limit",
                text.parse::<i64>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| format!("must be a whole number from 1 to {MAX_LIMIT}")),
            ),
        };
        let after = match cursor.map(str::trim) {
            None | Some("") => Some(None),
            Some(text) => errors.check("cursor", decode(text).map(Some)),
        };
        match (limit, after) {
            (Some(limit), Some(after)) if errors.is_empty() => Ok(Self { limit, after }),
            _ => Err(errors),
        }
    }

    /// How many rows to fetch: one more than the page, to learn whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        self.limit + 1
    }

    /// Cuts the fetched rows to the page and makes the cursor of the next one from the last row.
    pub fn page<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> K) -> Page<T> {
        let more = rows.len() as i64 > self.limit;
        rows.truncate(self.limit as usize);
        let next_cursor = if more {
            rows.last().map(|row| encode(&key(row)))
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

fn encode<K: Serialize>(key: &K) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).expect("sort keys serialize to JSON"))
}

fn decode<K: DeserializeOwned>(cursor: &str) -> Result<K, &'static str> {
    const INVALID: &str = "is not a cursor this list returned";
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| INVALID)?;
    serde_json::from_slice(&bytes).map_err(|_| INVALID)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Key = (String, u32);

    fn request(limit: Option<&str>, cursor: Option<&str>) -> Result<PageRequest<Key>, FieldErrors> {
        PageRequest::parse(FieldErrors::new(), limit, cursor)
    }

    #[test]
    fn a_full_page_carries_a_cursor_that_decodes_to_its_last_key() {
        let first = request(Some("2"), None).unwrap();
        let page = first.page(
            vec![("a".to_string(), 1), ("b".into(), 2), ("c".into(), 3)],
            Clone::clone,
        );
        assert_eq!(page.items.len(), 2);
        let next = request(Some("2"), page.next_cursor.as_deref()).unwrap();
        assert_eq!(next.after, Some(("b".to_string(), 2)));
        assert!(
            next.page(vec![("c".to_string(), 3)], Clone::clone)
                .next_cursor
                .is_none()
        );
    }

    #[test]
    fn bad_limits_and_cursors_are_named() {
        for limit in ["0", "101", "ten", "-1"] {
            assert!(request(Some(limit), None).is_err(), "{limit}");
        }
        assert_eq!(request(None, None).unwrap().limit, DEFAULT_LIMIT);
        let errors = request(Some("0"), Some("not a cursor")).unwrap_err();
        assert_eq!(errors, {
            let mut both = FieldErrors::single("limit", "must be a whole number from 1 to 100");
            both.add("cursor", "is not a cursor this list returned");
            both
        });
    }
}
