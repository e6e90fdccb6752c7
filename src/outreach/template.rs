//! Message templates: text with `{{firstName}}`, `{{lastName}}` and `{{practiceName}}`.
//!
//! Checking and rendering are one function, so a template accepted when a sequence is saved is
//! exactly a template that renders when its step falls due. Whitespace inside the braces is
//! allowed (`{{ firstName }}`); names are case-sensitive, as the front-end writes them.

/// The values a template may name.
#[derive(Debug, Clone, Copy, Default)]
pub struct Values<'a> {
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub practice_name: &'a str,
}

impl<'a> Values<'a> {
    fn get(&self, name: &str) -> Option<&'a str> {
        match name {
            "firstName" => Some(self.first_name),
            "lastName" => Some(self.last_name),
            "practiceName" => Some(self.practice_name),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "unknown placeholder {{{{{0}}}}}: use {{{{firstName}}}}, {{{{lastName}}}} or {{{{practiceName}}}}"
    )]
    UnknownPlaceholder(String),
    #[error("a placeholder opened with {{{{ is not closed with }}}}")]
    Unclosed,
}

/// The text with each placeholder replaced by its value.
pub fn render(text: &str, values: &Values<'_>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after_open = &rest[open + 2..];
        let close = after_open.find("}}").ok_or(TemplateError::Unclosed)?;
        let name = after_open[..close].trim();
        out.push_str(
            values
                .get(name)
                .ok_or_else(|| TemplateError::UnknownPlaceholder(name.to_string()))?,
        );
        rest = &after_open[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether `text` would render: every placeholder known and closed.
pub fn check(text: &str) -> Result<(), TemplateError> {
    render(text, &Values::default()).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAT: Values<'static> = Values {
        first_name: "Pat",
        last_name: "Lee",
        practice_name: "Smile Dental",
    };

    #[test]
    fn placeholders_are_replaced_with_or_without_inner_spaces() {
        let text = "Hi {{firstName}} {{ lastName }}, {{practiceName}} misses you {{firstName}}!";
        assert_eq!(
            render(text, &PAT).unwrap(),
            "Hi Pat Lee, Smile Dental misses you Pat!"
        );
        assert_eq!(
            render("no placeholders } {", &PAT).unwrap(),
            "no placeholders } {"
        );
    }

    #[test]
    fn unknown_and_unclosed_placeholders_are_refused() {
        assert_eq!(
            check("Hi {{FirstName}}"),
            Err(TemplateError::UnknownPlaceholder("FirstName".into()))
        );
        assert_eq!(
            check("Hi {{}}"),
            Err(TemplateError::UnknownPlaceholder(String::new()))
        );
        assert_eq!(check("Hi {{firstName"), Err(TemplateError::Unclosed));
        assert!(
            TemplateError::UnknownPlaceholder("dob".into())
                .to_string()
                .starts_with("unknown placeholder {{dob}}")
        );
    }

    #[test]
    fn values_are_not_themselves_expanded() {
        let sneaky = Values {
            first_name: "{{lastName}}",
            ..PAT
        };
        assert_eq!(render("{{firstName}}", &sneaky).unwrap(), "{{lastName}}");
    }
}
