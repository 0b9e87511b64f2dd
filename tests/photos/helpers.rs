//! What the photo tests add to the test kit (`support`): owner tokens, uploads and file reads
//! over HTTP ([`PhotoApi`] on the kit's `Api`), and a photo's processing followed on the kit's
//! Socket.IO client ([`Processing`]).

use std::path::PathBuf;

use reqwest::Method;
use reqwest::header::HeaderMap;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::support::api::{Api, answer};
use crate::support::client::{Received, TestClient};
use crate::support::hub::TestHub;
use crate::support::token;

/// A token that may upload, read and delete `user`'s photos.
pub fn owner(user: &str) -> String {
    token(user, &["read:photos", "write:photos"])
}

/// A multipart form with `bytes` as the file `filename` in field `field` (`photo` is the one
/// the hub reads).
pub fn form(field: &str, filename: &str, bytes: Vec<u8>) -> Form {
    Form::new().part(
        field.to_owned(),
        Part::bytes(bytes).file_name(filename.to_owned()),
    )
}

/// The photos directory of a hub's data dir.
pub fn photos_dir(hub: &TestHub) -> PathBuf {
    hub.data_dir().join("photos")
}

/// The photo endpoints of a hub, and its sockets once connected.
pub(crate) trait PhotoApi {
    /// Uploads `form` (see [`form`]) with `token` (none: no header): status and JSON body.
    async fn upload_as(&self, token: Option<&str>, form: Form) -> (u16, Value);

    /// Uploads as `user` (owner token) and expects 202; returns the photo id.
    async fn upload(&self, user: &str, filename: &str, bytes: Vec<u8>) -> String;

    /// GETs `path` with `token` and `headers`: status, headers and bytes.
    async fn fetch(
        &self,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> (u16, HeaderMap, Vec<u8>);

    /// DELETEs `path` with `token`: status and JSON body.
    async fn delete(&self, path: &str, token: &str) -> (u16, Value);

    /// A socket of `user` (with `read:photos`), once `connection:established` arrived.
    async fn socket(&self, user: &str) -> TestClient;
}

impl PhotoApi for Api {
    async fn upload_as(&self, token: Option<&str>, form: Form) -> (u16, Value) {
        let mut request = self.request(Method::POST, "/api/photos").multipart(form);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request).await
    }

    async fn upload(&self, user: &str, filename: &str, bytes: Vec<u8>) -> String {
        let (status, body) = self
            .upload_as(Some(&owner(user)), form("photo", filename, bytes))
            .await;
        assert_eq!(status, 202, "{body}");
        body["photoId"].as_str().expect("photoId").to_owned()
    }

    async fn fetch(
        &self,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> (u16, HeaderMap, Vec<u8>) {
        let mut request = self.request(Method::GET, path).bearer_auth(token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("GET");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (
            status,
            headers,
            response.bytes().await.expect("body").to_vec(),
        )
    }

    async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        answer(self.request(Method::DELETE, path).bearer_auth(token)).await
    }

    async fn socket(&self, user: &str) -> TestClient {
        let mut socket = self.client_for(user).await;
        socket.next_named("connection:established").await;
        socket
    }
}

/// A photo's processing as a socket sees it.
pub(crate) trait Processing {
    /// Subscribes to `photo` from its first event and collects its room's events up to and
    /// including the first `photo.processing.completed` or `photo.processing.failed`.
    async fn processing(&mut self, photo: &str) -> Vec<Received>;
}

impl Processing for TestClient {
    async fn processing(&mut self, photo: &str) -> Vec<Received> {
        self.client
            .emit("subscribe:photo", json!({ "photoId": photo, "since": 0 }))
            .await
            .expect("emit");
        let room = format!("photo:{photo}");
        let mut seen = Vec::new();
        loop {
            let (event, value) = self.next().await;
            if value.get("room").and_then(Value::as_str) != Some(room.as_str()) {
                continue;
            }
            let end = matches!(
                event.as_str(),
                "photo.processing.completed" | "photo.processing.failed"
            );
            seen.push((event, value));
            if end {
                return seen;
            }
        }
    }
}
