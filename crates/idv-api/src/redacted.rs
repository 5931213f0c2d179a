//! Redacting `Debug` for wire types that carry a secret: a stray `{:?}`
//! must never print it.

use std::fmt;

impl fmt::Debug for crate::DbTargetPut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbTargetPut")
            .field("connection_url", &"<redacted>")
            .field("role_prefix", &self.role_prefix)
            .finish()
    }
}

impl fmt::Debug for crate::DbCredsIssued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbCredsIssued")
            .field("lease", &self.lease)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .finish()
    }
}

impl fmt::Debug for crate::WebhookCreated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookCreated")
            .field("webhook", &self.webhook)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for crate::SsoPut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SsoPut")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scopes", &self.scopes)
            .field("groups_claim", &self.groups_claim)
            .field("role_map", &self.role_map)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_do_not_show_in_debug() {
        let t = crate::DbTargetPut {
            connection_url: "postgres://u:hunter2@h/db".into(),
            role_prefix: None,
        };
        assert!(!format!("{t:?}").contains("hunter2"));
    }
}
