//! SOAP 1.2 envelopes: building a request (with the WS-Security header when there are
//! credentials) and reading an answer: the envelope, its body's one element checked by
//! namespace and name, or the fault it carries.

use roxmltree::Node;

use crate::OnvifError;
use crate::xml;

pub const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";
/// Some older firmware answers in SOAP 1.1 whatever it was asked in.
pub const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const TDS: &str = "http://www.onvif.org/ver10/device/wsdl";
pub const TRT: &str = "http://www.onvif.org/ver10/media/wsdl";
pub const TR2: &str = "http://www.onvif.org/ver20/media/wsdl";
pub const TT: &str = "http://www.onvif.org/ver10/schema";

/// A request envelope around `body` (already XML), with `header` (already XML) if any.
pub fn envelope(header: Option<&str>, body: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<s:Envelope xmlns:s="{s}" xmlns:tds="{tds}" xmlns:trt="{trt}" xmlns:tr2="{tr2}" xmlns:tt="{tt}">"#,
            "{h}<s:Body>{b}</s:Body></s:Envelope>"
        ),
        s = SOAP12,
        tds = TDS,
        trt = TRT,
        tr2 = TR2,
        tt = TT,
        h = header
            .map(|h| format!("<s:Header>{h}</s:Header>"))
            .unwrap_or_default(),
        b = body,
    )
}

/// Reads an answer whose body must hold the element `{ns}local`, and hands it to `read`.
/// A body holding a fault becomes [`OnvifError::Fault`] (or [`OnvifError::Unauthorized`]
/// for ONVIF's NotAuthorized); anything else is [`OnvifError::Unexpected`].
pub fn read_response<T>(
    text: &str,
    ns: &str,
    local: &str,
    read: impl FnOnce(Node<'_, '_>) -> Result<T, OnvifError>,
) -> Result<T, OnvifError> {
    if text.len() > crate::MAX_RESPONSE_BYTES {
        return Err(OnvifError::TooLarge {
            limit: crate::MAX_RESPONSE_BYTES,
        });
    }
    let doc = xml::parse(text).map_err(|e| OnvifError::Malformed(e.to_string()))?;
    let root = doc.root_element();
    let soap = match root.tag_name().namespace() {
        Some(SOAP12) if root.tag_name().name() == "Envelope" => SOAP12,
        Some(SOAP11) if root.tag_name().name() == "Envelope" => SOAP11,
        _ => {
            return Err(OnvifError::Unexpected {
                expected: format!("a SOAP Envelope ({{{SOAP12}}}Envelope)"),
                found: xml::qname(root),
            });
        }
    };
    let body = xml::child(root, soap, "Body").ok_or(OnvifError::Missing("SOAP Body"))?;
    let first = body
        .children()
        .find(|c| c.is_element())
        .ok_or(OnvifError::Missing("element in the SOAP Body"))?;
    if xml::is(first, soap, "Fault") {
        return Err(fault(first, soap));
    }
    if !xml::is(first, ns, local) {
        return Err(OnvifError::Unexpected {
            expected: format!("{{{ns}}}{local}"),
            found: xml::qname(first),
        });
    }
    read(first)
}

/// The local part of a QName value (`ter:NotAuthorized` -> `NotAuthorized`).
fn local_part(v: &str) -> &str {
    v.rsplit_once(':').map(|(_, l)| l).unwrap_or(v).trim()
}

fn fault(node: Node<'_, '_>, soap: &str) -> OnvifError {
    const MAX: usize = 512;
    let clip = |s: &str| -> String { s.chars().take(MAX).collect() };
    let (code, subcodes, reason) = if soap == SOAP12 {
        let code = xml::child(node, soap, "Code");
        let value = code
            .and_then(|c| xml::child(c, soap, "Value"))
            .map(xml::text)
            .unwrap_or("");
        // Subcodes nest; ONVIF puts the meaningful one (ter:NotAuthorized) at any depth.
        let mut subcodes = Vec::new();
        let mut at = code.and_then(|c| xml::child(c, soap, "Subcode"));
        while let Some(sc) = at {
            if let Some(v) = xml::child(sc, soap, "Value") {
                subcodes.push(local_part(xml::text(v)).to_owned());
            }
            at = xml::child(sc, soap, "Subcode");
            if subcodes.len() > 8 {
                break;
            }
        }
        let reason = xml::child(node, soap, "Reason")
            .and_then(|r| xml::child(r, soap, "Text"))
            .map(xml::text)
            .unwrap_or("");
        (local_part(value).to_owned(), subcodes, reason.to_owned())
    } else {
        let code = xml::child_text(node, "faultcode").unwrap_or_default();
        let reason = xml::child_text(node, "faultstring").unwrap_or_default();
        (local_part(&code).to_owned(), Vec::new(), reason)
    };
    let unauthorized = subcodes
        .iter()
        .any(|s| s == "NotAuthorized" || s == "FailedAuthentication")
        || code == "NotAuthorized"
        || code == "FailedAuthentication";
    if unauthorized {
        return OnvifError::Unauthorized;
    }
    OnvifError::Fault {
        code: clip(if code.is_empty() { "unknown" } else { &code }),
        subcode: subcodes.last().map(|s| clip(s)),
        reason: clip(if reason.is_empty() {
            "no reason given"
        } else {
            &reason
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(body: &str) -> String {
        format!(r#"<s:Envelope xmlns:s="{SOAP12}"><s:Body>{body}</s:Body></s:Envelope>"#)
    }

    fn read(text: &str) -> Result<String, OnvifError> {
        read_response(text, TDS, "GetUsersResponse", |n| Ok(xml::qname(n)))
    }

    #[test]
    fn the_expected_element_is_handed_over() {
        let ok = env(&format!(r#"<tds:GetUsersResponse xmlns:tds="{TDS}"/>"#));
        assert_eq!(read(&ok).unwrap(), format!("{{{TDS}}}GetUsersResponse"));
    }

    #[test]
    fn a_wrong_namespace_is_named_not_accepted() {
        let wrong = env(r#"<x:GetUsersResponse xmlns:x="urn:not-onvif"/>"#);
        let e = read(&wrong).unwrap_err();
        assert!(
            matches!(&e, OnvifError::Unexpected { found, .. } if found == "{urn:not-onvif}GetUsersResponse"),
            "{e}"
        );
        let not_soap = r#"<Envelope><Body/></Envelope>"#;
        assert!(matches!(read(not_soap), Err(OnvifError::Unexpected { .. })));
    }

    #[test]
    fn a_not_authorized_fault_is_unauthorized() {
        let f = env(
            r#"<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value xmlns:ter="http://www.onvif.org/ver10/error">ter:NotAuthorized</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en">Sender not authorized</s:Text></s:Reason></s:Fault>"#,
        );
        assert!(matches!(read(&f), Err(OnvifError::Unauthorized)));
    }

    #[test]
    fn other_faults_keep_code_subcode_and_reason() {
        let f = env(
            r#"<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>ter:ActionNotSupported</s:Value></s:Subcode></s:Code><s:Reason><s:Text>no media2</s:Text></s:Reason></s:Fault>"#,
        );
        let e = read(&f).unwrap_err();
        assert!(
            matches!(&e, OnvifError::Fault { code, subcode: Some(s), reason } if code == "Receiver" && s == "ActionNotSupported" && reason == "no media2"),
            "{e:?}"
        );
        assert!(e.to_string().contains("no media2"), "{e}");
        let soap11 = format!(
            r#"<e:Envelope xmlns:e="{SOAP11}"><e:Body><e:Fault><faultcode>e:Client</faultcode><faultstring>bad</faultstring></e:Fault></e:Body></e:Envelope>"#
        );
        assert!(
            matches!(read(&soap11), Err(OnvifError::Fault { code, reason, .. }) if code == "Client" && reason == "bad")
        );
    }

    #[test]
    fn malformed_empty_and_huge_answers_are_errors() {
        assert!(matches!(read("<s:Envelope"), Err(OnvifError::Malformed(_))));
        assert!(matches!(read(""), Err(OnvifError::Malformed(_))));
        assert!(matches!(
            read(&env("")),
            Err(OnvifError::Missing("element in the SOAP Body"))
        ));
        let huge = env(&"x".repeat(crate::MAX_RESPONSE_BYTES));
        assert!(matches!(read(&huge), Err(OnvifError::TooLarge { .. })));
    }
}
