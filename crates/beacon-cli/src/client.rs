//! A small HTTP client of the runner's API for the CLI: JSON in and out, errors that
//! keep the runner's `error_code`, and a Server-Sent Events reader for live progress.

use std::time::Duration;

use serde_json::Value;

/// What went wrong talking to a service.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect, or no answer.
    #[error("cannot reach {url}: {message}")]
    Unreachable { url: String, message: String },
    /// The service answered an error.
    #[error("{status} {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
        body: Value,
    },
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Refused { status, .. } => Some(*status),
            ClientError::Unreachable { .. } => None,
        }
    }
}

#[derive(Clone)]
pub struct Client {
    pub base: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Status and body of a 2xx answer; a transport error or an HTTP error becomes a
    /// `ClientError` (keeping the runner's `error_code`).
    async fn read(
        url: &str,
        resp: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<(u16, String), ClientError> {
        let unreachable = |e: reqwest::Error| ClientError::Unreachable {
            url: url.to_string(),
            message: root_cause(&e),
        };
        let resp = resp.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(unreachable)?;
        if status >= 400 {
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            return Err(ClientError::Refused {
                status,
                code: body
                    .get("error_code")
                    .and_then(Value::as_str)
                    .unwrap_or("HTTP_ERROR")
                    .to_string(),
                message: body
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                body,
            });
        }
        Ok((status, text))
    }

    async fn finish(
        &self,
        url: &str,
        resp: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<(u16, Value), ClientError> {
        let (status, text) = Self::read(url, resp).await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        let url = self.url(path);
        let resp = self
            .http
            .get(&url)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        self.finish(&url, resp).await.map(|(_, v)| v)
    }

    /// GET of a text resource (an HTML page).
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let url = self.url(path);
        let resp = self
            .http
            .get(&url)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        Self::read(&url, resp).await.map(|(_, text)| text)
    }

    /// GET that also returns the status (for routes whose 503 carries a body).
    pub async fn get_any(&self, path: &str) -> Result<(u16, Value), ClientError> {
        let url = self.url(path);
        let resp = self
            .http
            .get(&url)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match self.finish(&url, resp).await {
            Ok(v) => Ok(v),
            Err(ClientError::Refused { status, body, .. }) => Ok((status, body)),
            Err(e) => Err(e),
        }
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> Result<Value, ClientError> {
        let url = self.url(path);
        let resp = self
            .http
            .get(&url)
            .bearer_auth(token)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        self.finish(&url, resp).await.map(|(_, v)| v)
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), ClientError> {
        let url = self.url(path);
        let resp = self
            .http
            .post(&url)
            .json(body)
            .timeout(Duration::from_secs(60))
            .send()
            .await;
        self.finish(&url, resp).await
    }

    /// Opens `GET path` as an event stream.
    pub async fn events(&self, path: &str) -> Result<EventStream, ClientError> {
        let url = self.url(path);
        let resp = self
            .http
            .get(&url)
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: url.clone(),
                message: root_cause(&e),
            })?;
        if !resp.status().is_success() {
            return Err(self.finish(&url, Ok(resp)).await.err().unwrap_or(
                ClientError::Unreachable {
                    url,
                    message: "no stream".into(),
                },
            ));
        }
        Ok(EventStream {
            resp,
            buf: String::new(),
        })
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: String,
    pub data: Value,
}

pub struct EventStream {
    resp: reqwest::Response,
    buf: String,
}

impl EventStream {
    /// The next event, or `None` when the server closed the stream.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(ev) = take_event(&mut self.buf) {
                return Some(ev);
            }
            match self.resp.chunk().await {
                Ok(Some(bytes)) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }
}

/// Removes the first complete event (ended by a blank line) from `buf`. Comment lines
/// (keep-alives) and events without data are skipped.
pub fn take_event(buf: &mut String) -> Option<Event> {
    loop {
        let normalized_end = buf
            .find("\n\n")
            .map(|i| (i, 2))
            .or_else(|| buf.find("\r\n\r\n").map(|i| (i, 4)))?;
        let block: String = buf[..normalized_end.0].to_string();
        buf.drain(..normalized_end.0 + normalized_end.1);
        let mut name = String::from("message");
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if !data.is_empty() {
            let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
            return Some(Event { name, data });
        }
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_across_chunks_and_skips_keepalives() {
        let mut buf = String::from(":keep-alive\n\nevent: job_update\ndata: {\"status\":");
        assert_eq!(take_event(&mut buf), None);
        buf.push_str("\"running\"}\n\nevent: execution_update\ndata: {\"id\":\"e1\"}\n\n");
        let first = take_event(&mut buf).unwrap();
        assert_eq!(
            (first.name.as_str(), first.data["status"].as_str()),
            ("job_update", Some("running"))
        );
        assert_eq!(take_event(&mut buf).unwrap().data["id"], "e1");
        assert_eq!(take_event(&mut buf), None);
    }
}
