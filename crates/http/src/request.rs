//! The templated parts of a request (URL, headers, body), compiled once and rendered per record.

use std::collections::BTreeMap;

use bytes::Bytes;
use reqwest::header::HeaderName;
use weir_core::template::{Template, TemplateContext};
use weir_core::{BuildError, Record};

/// URL, header and body templates.
pub struct RequestTemplates {
    url: Template,
    headers: Vec<(HeaderName, Template)>,
    body: Option<Template>,
}

/// A request rendered for one record.
pub struct Rendered {
    /// The URL.
    pub url: String,
    /// Header names and values.
    pub headers: Vec<(HeaderName, String)>,
    /// The body and its content type, unless the method sends none.
    pub body: Option<(Bytes, &'static str)>,
}

impl RequestTemplates {
    /// Compiles the templates; errors name the option (`url`, `headers.x-y`, `body`).
    pub fn compile(
        url: &str,
        headers: &BTreeMap<String, String>,
        body: Option<&str>,
    ) -> Result<Self, BuildError> {
        let tpl = |text: &str, at: &str| {
            Template::compile(text).map_err(|e| BuildError::at(at, e.to_string()))
        };
        let compiled_url = tpl(url, "url")?;
        if compiled_url.is_static() {
            reqwest::Url::parse(url)
                .map_err(|e| BuildError::at("url", format!("not a URL: {e}")))?;
        }
        let mut hs = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            let at = format!("headers.{name}");
            let h = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| BuildError::at(&at, e.to_string()))?;
            hs.push((h, tpl(value, &at)?));
        }
        Ok(RequestTemplates {
            url: compiled_url,
            headers: hs,
            body: body.map(|b| tpl(b, "body")).transpose()?,
        })
    }

    /// Renders for `record`. The body is the body template, or the record's value as it came
    /// (JSON); none when `with_body` is false (GET).
    pub fn render(
        &self,
        record: &mut Record,
        cx: &TemplateContext<'_>,
        with_body: bool,
    ) -> Result<Rendered, String> {
        let url = self
            .url
            .render_text(record, cx)
            .map_err(|e| format!("cannot render the url template: {e}"))?;
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, t) in &self.headers {
            let v = t
                .render_text(record, cx)
                .map_err(|e| format!("cannot render header {name}: {e}"))?;
            headers.push((name.clone(), v));
        }
        let body = if with_body {
            Some(self.render_body(record, cx)?)
        } else {
            None
        };
        Ok(Rendered { url, headers, body })
    }

    /// Renders only the body: the body template, or the record's value as it came (JSON).
    pub fn render_body(
        &self,
        record: &mut Record,
        cx: &TemplateContext<'_>,
    ) -> Result<(Bytes, &'static str), String> {
        let body_error = |e| format!("cannot render the body template: {e}");
        Ok(match &self.body {
            None => (record.value.to_bytes(), "application/json"),
            Some(t) if t.is_json() => {
                let j = t.render(record, cx).map_err(body_error)?;
                (
                    Bytes::from(serde_json::to_vec(&j).expect("JSON serializes")),
                    "application/json",
                )
            }
            Some(t) => (
                Bytes::from(t.render_text(record, cx).map_err(body_error)?),
                "text/plain; charset=utf-8",
            ),
        })
    }

    /// True when the body is the record's value as it came, which needs no rendering.
    pub fn body_is_value(&self) -> bool {
        self.body.is_none()
    }
}
