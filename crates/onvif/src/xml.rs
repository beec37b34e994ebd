//! Reading XML from devices with limits (no DTD, a node limit, a byte limit) and the few
//! namespace-aware lookups the parsers need; and escaping what goes into requests.

use roxmltree::{Document, Node, ParsingOptions};

/// Parses `text` as XML without a DTD (so no entity can expand) and with at most
/// [`crate::MAX_XML_NODES`] nodes.
pub(crate) fn parse(text: &str) -> Result<Document<'_>, roxmltree::Error> {
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: crate::MAX_XML_NODES,
        ..ParsingOptions::default()
    };
    Document::parse_with_options(text, options)
}

/// The first child element named `local` in namespace `ns`.
pub(crate) fn child<'a, 'i>(node: Node<'a, 'i>, ns: &str, local: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| is(*c, ns, local))
}

/// Every child element named `local` in namespace `ns`.
pub(crate) fn children<'a, 'i: 'a>(
    node: Node<'a, 'i>,
    ns: &'a str,
    local: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children().filter(move |c| is(*c, ns, local))
}

/// The first child element named `local` in any namespace: some devices put ONVIF schema
/// elements in the service namespace or none, and the spec's own namespaces are checked on
/// the answer's outer element.
pub(crate) fn child_any<'a, 'i>(node: Node<'a, 'i>, local: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == local)
}

pub(crate) fn children_any<'a, 'i: 'a>(
    node: Node<'a, 'i>,
    local: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == local)
}

pub(crate) fn is(node: Node<'_, '_>, ns: &str, local: &str) -> bool {
    node.is_element() && node.tag_name().name() == local && node.tag_name().namespace() == Some(ns)
}

/// `{namespace}local` of an element, for error messages.
pub(crate) fn qname(node: Node<'_, '_>) -> String {
    match node.tag_name().namespace() {
        Some(ns) => format!("{{{ns}}}{}", node.tag_name().name()),
        None => node.tag_name().name().to_owned(),
    }
}

/// The text of an element, trimmed; empty when it has none.
pub(crate) fn text<'a>(node: Node<'a, '_>) -> &'a str {
    node.text().map(str::trim).unwrap_or("")
}

/// The trimmed text of the child `local` (any namespace), if present and not empty.
pub(crate) fn child_text(node: Node<'_, '_>, local: &str) -> Option<String> {
    child_any(node, local)
        .map(text)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// Escapes text for an XML element's content or a double-quoted attribute.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dtd_is_refused_so_no_entity_expands() {
        let lol = r#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><l>&b;</l>"#;
        assert!(parse(lol).is_err());
    }

    #[test]
    fn more_nodes_than_the_limit_are_refused() {
        let many = format!(
            "<a>{}</a>",
            "<b/>".repeat(crate::MAX_XML_NODES as usize + 1)
        );
        assert!(parse(&many).is_err());
    }

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(escape(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&apos;");
    }
}
