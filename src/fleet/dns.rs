//! `--store` addresses. A URL whose host is an IP address is used as
//! given; a host name (`http://name:port`, `https://name:port`, or
//! `dns+name:port` / `dns+https://name:port`, as a Kubernetes headless
//! Service) is resolved and every address it has is a replica of the
//! partition, re-resolved every `--store.dns-interval`. A resolved https
//! replica is dialled by IP address but its certificate is checked for the
//! host name (or `--store.tls-server-name`): see `Fleet::refresh`.

use std::net::IpAddr;

/// One `--store` entry.
#[derive(Debug)]
pub(super) struct Target {
    /// `http(s)://host:port`.
    url: String,
    /// `http` or `https`.
    scheme: &'static str,
    /// The host to resolve, with its port; `None` for an IP address.
    name: Option<(String, u16)>,
}

impl Target {
    pub(super) fn parse(spec: &str) -> anyhow::Result<Target> {
        let url = match spec.strip_prefix("dns+") {
            Some(rest) if rest.contains("://") => rest.to_string(),
            Some(hostport) => format!("http://{hostport}"),
            None => spec.to_string(),
        };
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| anyhow::anyhow!("--store {spec:?}: {e}"))?;
        let scheme = match uri.scheme_str() {
            Some("http") => "http",
            Some("https") => "https",
            _ => anyhow::bail!(
                "--store {spec:?}: expected http(s)://host:port, dns+host:port or dns+https://host:port"
            ),
        };
        let (Some(host), Some(port)) = (uri.host(), uri.port_u16()) else {
            anyhow::bail!(
                "--store {spec:?}: expected http(s)://host:port, dns+host:port or dns+https://host:port"
            );
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = host
            .parse::<IpAddr>()
            .is_err()
            .then(|| (host.to_string(), port));
        Ok(Target { url, scheme, name })
    }

    /// Is this entry spoken over TLS?
    pub(super) fn is_https(&self) -> bool {
        self.scheme == "https"
    }

    /// The host name a replica of this entry is checked for over TLS: the
    /// name resolved (none for an IP address or plain HTTP).
    pub(super) fn tls_name(&self) -> Option<&str> {
        match &self.name {
            Some((host, _)) if self.is_https() => Some(host),
            _ => None,
        }
    }

    /// Does this entry need resolving?
    pub(super) fn is_name(&self) -> bool {
        self.name.is_some()
    }

    /// The base URLs this entry stands for now.
    pub(super) async fn resolve(&self) -> Result<Vec<String>, String> {
        let Some((host, port)) = &self.name else {
            return Ok(vec![self.url.clone()]);
        };
        let addrs = tokio::net::lookup_host((host.as_str(), *port))
            .await
            .map_err(|e| format!("resolving {host}: {e}"))?;
        let mut urls: Vec<String> = addrs.map(|a| format!("{}://{a}", self.scheme)).collect();
        urls.sort();
        urls.dedup();
        if urls.is_empty() {
            return Err(format!("{host} has no address"));
        }
        Ok(urls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_names() {
        assert!(!Target::parse("http://10.0.0.1:9480").unwrap().is_name());
        assert!(!Target::parse("http://[::1]:9480").unwrap().is_name());
        assert!(Target::parse("http://store-0:9480").unwrap().is_name());
        assert!(
            Target::parse("dns+tessera-p0.ns.svc:9480")
                .unwrap()
                .is_name()
        );
        assert!(Target::parse("https://a:1").unwrap().is_https());
        assert!(
            Target::parse("dns+https://tessera-p0.ns.svc:9480")
                .unwrap()
                .is_https()
        );
        assert!(!Target::parse("dns+tessera-p0:9480").unwrap().is_https());
        assert!(Target::parse("ftp://a:1").is_err());
        assert!(Target::parse("dns+ftp://a:1").is_err());
        assert!(Target::parse("http://a").is_err());
    }

    #[tokio::test]
    async fn resolves_a_name_to_every_address() {
        let t = Target::parse("dns+localhost:9480").unwrap();
        let urls = t.resolve().await.unwrap();
        assert!(
            urls.contains(&"http://127.0.0.1:9480".to_string()),
            "{urls:?}"
        );
        let t = Target::parse("dns+https://localhost:9480").unwrap();
        let urls = t.resolve().await.unwrap();
        assert!(
            urls.contains(&"https://127.0.0.1:9480".to_string()),
            "{urls:?}"
        );
    }
}
