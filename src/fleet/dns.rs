//! `--store` addresses. A URL whose host is an IP address is used as
//! given; a host name (`http://name:port`, or `dns+name:port`, as a
//! Kubernetes headless Service) is resolved and every address it has is a
//! replica of the partition, re-resolved every `--store.dns-interval`.

use std::net::IpAddr;

/// One `--store` entry.
#[derive(Debug)]
pub(super) struct Target {
    /// `http://host:port`.
    url: String,
    /// The host to resolve, with its port; `None` for an IP address.
    name: Option<(String, u16)>,
}

impl Target {
    pub(super) fn parse(spec: &str) -> anyhow::Result<Target> {
        let url = match spec.strip_prefix("dns+") {
            Some(hostport) => format!("http://{hostport}"),
            None => spec.to_string(),
        };
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| anyhow::anyhow!("--store {spec:?}: {e}"))?;
        let (Some("http"), Some(host), Some(port)) = (uri.scheme_str(), uri.host(), uri.port_u16())
        else {
            anyhow::bail!("--store {spec:?}: expected http://host:port or dns+host:port");
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = host
            .parse::<IpAddr>()
            .is_err()
            .then(|| (host.to_string(), port));
        Ok(Target { url, name })
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
        let mut urls: Vec<String> = addrs.map(|a| format!("http://{a}")).collect();
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
        assert!(Target::parse("https://a:1").is_err());
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
    }
}
