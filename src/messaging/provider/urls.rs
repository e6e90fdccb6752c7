//! Our own public URLs, as handed to providers and recipients, built in one place from
//! `WEBHOOK_BASE_URL` (never from a request's `Host`).

use url::Url;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct OurUrls {
    base: Url,
}

impl OurUrls {
    pub fn new(base: Url) -> Self {
        Self { base }
    }

    /// `path` (starting with `/`) under the public base URL.
    pub fn absolute(&self, path: &str) -> String {
        format!("{}{}", self.base.as_str().trim_end_matches('/'), path)
    }

    /// A vendor's webhook: `/api/webhooks/{route}` for the platform's account, with
    /// `/{practiceId}` for a practice's own.
    pub fn webhook(&self, route: &str, practice_id: Option<Uuid>) -> String {
        match practice_id {
            Some(id) => self.absolute(&format!("/api/webhooks/{route}/{id}")),
            None => self.absolute(&format!("/api/webhooks/{route}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_join_the_base_without_doubling_its_slash() {
        let urls = OurUrls::new("https://x.example/".parse().unwrap());
        let id = Uuid::nil();
        assert_eq!(
            urls.webhook("twilio", None),
            "https://x.example/api/webhooks/twilio"
        );
        assert_eq!(
            urls.webhook("sendgrid", Some(id)),
            format!("https://x.example/api/webhooks/sendgrid/{id}")
        );
    }
}
