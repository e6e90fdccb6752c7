//! The client's address, for the login throttle. Behind a load balancer every TCP peer is the
//! balancer, so its `X-Forwarded-For` must be read; anyone else could write that header, so it is
//! read only when the peer is one of `TRUSTED_PROXIES`, and then only up to the first address no
//! trusted proxy wrote.

use std::{convert::Infallible, net::IpAddr, net::SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, request::Parts},
};
use ipnet::IpNet;

use crate::AppState;

/// The address a request is attributed to.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        Ok(Self(client_address(
            peer,
            &parts.headers,
            &state.settings.trusted_proxies,
        )))
    }
}

/// Each proxy appends the address it received the request from, so the list reads client first,
/// nearest proxy last. Walking it from the right while the address is a trusted proxy's, the
/// first other address is the client: whatever stands to its left was written by that client and
/// proves nothing. An entry that is not an address ends the walk at the last trusted hop.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// `203.0.113.9`, `2001:db8::1`, and the `[2001:db8::1]:443` / `203.0.113.9:443` forms some
/// proxies write.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let forwarded = headers(&["198.51.100.1"]);
        assert_eq!(
            client_address(ip("203.0.113.5"), &forwarded, &nets(&["10.0.0.0/8"])),
            ip("203.0.113.5")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &forwarded, &[]),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_address_is_the_client() {
        let trusted = nets(&["10.0.0.0/8", "fd00::/8"]);
        let forwarded = headers(&["1.1.1.1, 198.51.100.7", "10.1.2.3"]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &forwarded, &trusted),
            ip("198.51.100.7")
        );
        let v6 = headers(&["[2001:db8::5]:443, fd00::1"]);
        assert_eq!(
            client_address(ip("fd00::2"), &v6, &trusted),
            ip("2001:db8::5")
        );
    }

    #[test]
    fn a_trusted_peer_without_the_header_or_with_garbage_is_taken_as_far_as_it_parses() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_address(
                ip("10.0.0.2"),
                &headers(&["198.51.100.7, unknown, 10.0.0.9"]),
                &trusted
            ),
            ip("10.0.0.9")
        );
        // Every hop trusted: the left-most one is as close to the client as anyone knows.
        assert_eq!(
            client_address(ip("10.0.0.2"), &headers(&["10.0.0.8, 10.0.0.9"]), &trusted),
            ip("10.0.0.8")
        );
    }
}
