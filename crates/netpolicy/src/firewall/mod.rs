//! Least-privilege firewall rules for a site, in three formats.
//!
//! The generator first builds a [`Plan`]: the list of allowed flows (source networks,
//! destination networks, port, protocol, and which component needs it and why), resolved from
//! the catalog's peer selectors against the site's zones and hosts. The renderers then write
//! that plan as nftables, iptables-restore or PowerShell text.
//!
//! Enforcement points (see docs/network-hardening.md):
//! - each host's **input** chain lets in only the flows addressed to it;
//! - the zone router's **forward** chain lets through only the flows of the plan, so devices
//!   that cannot run a firewall (cameras) are confined as well;
//! - both drop and count everything else; replies ride on connection tracking.

pub mod iptables;
pub mod nft;
pub mod powershell;

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::catalog::Catalog;
use crate::model::{ParseError, PortRange, PortSpec, Protocol, Role, Selector, ZoneKind};
use crate::site::{Host, RoleRef, Site};

/// One allowed flow.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub srcs: Vec<IpNet>,
    pub dsts: Vec<IpNet>,
    pub port: PortRange,
    pub protocol: Protocol,
    /// Short label, e.g. `xprotect:management-server 9000/tcp`.
    pub components: Vec<String>,
    /// Why the flow exists: purpose and who connects, from the catalog.
    pub why: Vec<String>,
}

/// A local-only port of a host: never opened, listed so the output says why.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalOnly {
    pub port: PortRange,
    pub protocol: Protocol,
    pub component: String,
    pub purpose: String,
}

/// Rules for one host's input chain.
#[derive(Debug, Clone, PartialEq)]
pub struct HostPlan {
    pub name: String,
    pub address: IpAddr,
    pub zone: String,
    pub zone_kind: ZoneKind,
    pub roles: Vec<String>,
    pub rules: Vec<Rule>,
    pub local_only: Vec<LocalOnly>,
    /// Ports left closed and why (disabled by default, no peer in this site...).
    pub closed: Vec<String>,
}

/// The whole site's plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub site: String,
    pub hosts: Vec<HostPlan>,
    /// Rules for the zone router's forward chain.
    pub forward: Vec<Rule>,
    /// Zones, for the router's header comment.
    pub zones: Vec<(String, ZoneKind, Vec<IpNet>)>,
}

/// Output format of `vigil firewall`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirewallFormat {
    Nftables,
    Iptables,
    Powershell,
}

impl std::str::FromStr for FirewallFormat {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "nftables" | "nft" => Ok(Self::Nftables),
            "iptables" => Ok(Self::Iptables),
            "powershell" | "ps1" => Ok(Self::Powershell),
            _ => Err(ParseError::UnknownFirewallFormat(s.to_string())),
        }
    }
}

/// One file of generated rules.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleFile {
    /// `router` or a host name.
    pub target: String,
    /// Suggested file name, e.g. `rec1.nft`, `router.rules.v4`.
    pub file_name: String,
    pub text: String,
}

struct Ctx<'a> {
    site: &'a Site,
    catalog: &'a Catalog,
}

impl Ctx<'_> {
    fn role(&self, r: &RoleRef) -> &Role {
        self.catalog
            .system(&r.system)
            .and_then(|s| s.role(&r.role))
            .expect("site roles are checked against the catalog when parsed")
    }

    fn hosts_where(&self, me: &Host, pred: impl Fn(&RoleRef, &Role) -> bool) -> Vec<IpNet> {
        self.site
            .hosts
            .iter()
            .filter(|h| h.name != me.name)
            .filter(|h| h.roles.iter().any(|r| pred(r, self.role(r))))
            .map(|h| IpNet::from(h.address))
            .collect()
    }

    /// Networks a selector stands for, seen from `me` running a role of `system`.
    fn resolve(&self, sel: &Selector, me: &Host, system: &str) -> Vec<IpNet> {
        match sel {
            Selector::Local => Vec::new(),
            Selector::System => self.hosts_where(me, |r, _| r.system == system),
            Selector::Zone(kind) => self
                .site
                .zones
                .iter()
                .filter(|z| z.kind == *kind)
                .flat_map(|z| z.subnets.iter().copied())
                .collect(),
            Selector::Kind(k) => self.hosts_where(me, |_, role| role.kinds.iter().any(|x| x == k)),
            Selector::Role { system, role } => {
                self.hosts_where(me, |r, _| r.system == *system && r.role == *role)
            }
            Selector::Net(n) => vec![*n],
            Selector::Host(name) => self
                .site
                .hosts
                .iter()
                .filter(|h| h.name == *name)
                .map(|h| IpNet::from(h.address))
                .collect(),
        }
    }

    /// Whether a source network lies on the Internet side of the site.
    ///
    /// An internet zone stands for "everything else" and may cover the other zones (the usual
    /// `0.0.0.0/0`), so containment alone would make every network Internet. A network belongs
    /// where its addresses do: to the zone with the most specific subnet that contains it, as
    /// for hosts (`Site::zone_of`). A wider network that reaches over an internet subnet counts
    /// as Internet too, or listing it would let that part of the Internet in.
    fn in_internet_zone(&self, net: &IpNet) -> bool {
        let owner = self
            .site
            .zones
            .iter()
            .flat_map(|z| {
                z.subnets
                    .iter()
                    .filter(|s| s.contains(net))
                    .map(move |s| (z.kind, s.prefix_len()))
            })
            .max_by_key(|(_, len)| *len)
            .map(|(kind, _)| kind);
        owner == Some(ZoneKind::Internet)
            || self
                .site
                .zones
                .iter()
                .filter(|z| z.kind == ZoneKind::Internet)
                .flat_map(|z| &z.subnets)
                .any(|s| s != net && net.contains(s))
    }
}

fn enabled(host: &Host, p: &PortSpec) -> bool {
    p.enabled_by_default
        || p.configured
        || host
            .enable
            .iter()
            .any(|(r, proto)| *r == p.port && *proto == p.protocol)
}

/// The ports a role uses on this host: overrides applied, per-instance ports expanded.
fn effective_ports(host: &Host, rr: &RoleRef, p: &PortSpec) -> Vec<PortRange> {
    let mut base = p.port;
    if let Some(o) = host
        .overrides
        .iter()
        .find(|o| o.role == *rr && PortRange::single(o.default) == p.port)
    {
        base = PortRange::single(o.port);
    }
    if p.per_instance && base.is_single() {
        (0..host.instances)
            .filter_map(|i| base.start.checked_add(i))
            .map(PortRange::single)
            .collect()
    } else {
        vec![base]
    }
}

fn describe(p: &PortSpec) -> String {
    let mut s = format!(
        "{} {}: {}",
        if p.application.is_empty() {
            "TCP"
        } else {
            &p.application
        },
        if p.encrypted {
            "(encrypted)"
        } else {
            "(PLAINTEXT)"
        },
        p.purpose
    );
    if !p.peers_text.is_empty() {
        s.push_str(&format!(". Peers: {}", p.peers_text));
    }
    s
}

fn sorted(mut v: Vec<IpNet>) -> Vec<IpNet> {
    v.sort();
    v.dedup();
    // Drop networks already covered by a wider one in the list.
    let all = v.clone();
    v.retain(|n| !all.iter().any(|m| m != n && m.contains(n)));
    v
}

fn covers(wide: &[IpNet], narrow: &[IpNet]) -> bool {
    narrow.iter().all(|n| wide.iter().any(|w| w.contains(n)))
}

fn merge_into(r: &mut Rule, rule: Rule) {
    for c in rule.components {
        if !r.components.contains(&c) {
            r.components.push(c);
        }
    }
    for w in rule.why {
        if !r.why.contains(&w) {
            r.why.push(w);
        }
    }
}

/// Adds a rule unless an existing rule for the same destination and port already lets the
/// same sources in (then only the explanation is merged), so every flow has one rule.
fn push_rule(rules: &mut Vec<Rule>, rule: Rule) {
    let same_target =
        |r: &Rule| r.dsts == rule.dsts && r.port == rule.port && r.protocol == rule.protocol;
    if let Some(r) = rules
        .iter_mut()
        .find(|r| same_target(r) && covers(&r.srcs, &rule.srcs))
    {
        merge_into(r, rule);
    } else if let Some(r) = rules
        .iter_mut()
        .find(|r| same_target(r) && covers(&rule.srcs, &r.srcs))
    {
        r.srcs = rule.srcs.clone();
        merge_into(r, rule);
    } else {
        rules.push(rule);
    }
}

/// Builds the plan of allowed flows for a site.
pub fn plan(site: &Site, catalog: &Catalog) -> Plan {
    let ctx = Ctx { site, catalog };
    let mut forward = Vec::new();
    let mut hosts: Vec<HostPlan> = site
        .hosts
        .iter()
        .map(|h| {
            let z = &site.zones[h.zone];
            HostPlan {
                name: h.name.clone(),
                address: h.address,
                zone: z.name.clone(),
                zone_kind: z.kind,
                roles: h.roles.iter().map(|r| r.to_string()).collect(),
                rules: Vec::new(),
                local_only: Vec::new(),
                closed: Vec::new(),
            }
        })
        .collect();

    for (hi, host) in site.hosts.iter().enumerate() {
        let host_net = IpNet::from(host.address);
        let host_in_dmz = site.zones[host.zone].kind == ZoneKind::Dmz;
        for rr in &host.roles {
            let role = ctx.role(rr);
            for p in &role.ports {
                for port in effective_ports(host, rr, p) {
                    let label = format!("{rr} {port}/{}", p.protocol);
                    if p.local_only {
                        hosts[hi].local_only.push(LocalOnly {
                            port,
                            protocol: p.protocol,
                            component: rr.to_string(),
                            purpose: p.purpose.clone(),
                        });
                        continue;
                    }
                    if !enabled(host, p) {
                        hosts[hi]
                            .closed
                            .push(format!("{label}: disabled by default ({})", p.purpose));
                        continue;
                    }
                    let mut srcs: Vec<IpNet> = p
                        .peers
                        .iter()
                        .flat_map(|s| ctx.resolve(s, host, &rr.system))
                        .collect();
                    // Only web ports of hosts in a DMZ are reachable from the Internet. DMZ
                    // hosts named by role (a mobile server) may still reach inward.
                    if !(p.web && host_in_dmz) {
                        srcs.retain(|n| !ctx.in_internet_zone(n));
                    }
                    // Only the host itself is left out: a network around it (its own zone,
                    // or the Internet's 0.0.0.0/0 on a DMZ web port) still holds real peers.
                    srcs.retain(|n| *n != host_net);
                    let srcs = sorted(srcs);
                    if srcs.is_empty() {
                        hosts[hi]
                            .closed
                            .push(format!("{label}: no peer of it exists in this site"));
                        continue;
                    }
                    let rule = Rule {
                        srcs,
                        dsts: vec![host_net],
                        port,
                        protocol: p.protocol,
                        components: vec![label],
                        why: vec![describe(p)],
                    };
                    push_rule(&mut hosts[hi].rules, rule.clone());
                    push_rule(&mut forward, rule);
                }
            }
            for p in &role.outbound {
                if !enabled(host, p) {
                    continue;
                }
                let dsts: Vec<IpNet> = p
                    .peers
                    .iter()
                    .flat_map(|s| ctx.resolve(s, host, &rr.system))
                    .filter(|n| *n != host_net)
                    .collect();
                let dsts = sorted(dsts);
                if dsts.is_empty() {
                    continue;
                }
                for port in effective_ports(host, rr, p) {
                    let rule = Rule {
                        srcs: vec![host_net],
                        dsts: dsts.clone(),
                        port,
                        protocol: p.protocol,
                        components: vec![format!("{rr} outbound {port}/{}", p.protocol)],
                        why: vec![describe(p)],
                    };
                    // Hosts of the site inside the destination also let this flow in.
                    for (hj, other) in site.hosts.iter().enumerate() {
                        if hj != hi && dsts.iter().any(|d| d.contains(&other.address)) {
                            let mut r = rule.clone();
                            r.dsts = vec![IpNet::from(other.address)];
                            push_rule(&mut hosts[hj].rules, r);
                        }
                    }
                    push_rule(&mut forward, rule);
                }
            }
        }
    }
    Plan {
        site: site.name.clone(),
        hosts,
        forward,
        zones: site
            .zones
            .iter()
            .map(|z| (z.name.clone(), z.kind, z.subnets.clone()))
            .collect(),
    }
}

/// Generates rule files for every target of the site in `format`.
pub fn generate(site: &Site, catalog: &Catalog, format: FirewallFormat) -> Vec<RuleFile> {
    let plan = plan(site, catalog);
    match format {
        FirewallFormat::Nftables => nft::render(&plan),
        FirewallFormat::Iptables => iptables::render(&plan),
        FirewallFormat::Powershell => powershell::render(&plan),
    }
}

/// Joins rule files into one printable document with a banner per file.
pub fn concat(files: &[RuleFile]) -> String {
    let mut out = String::new();
    for f in files {
        out.push_str(&format!("# ===== {} ({}) =====\n", f.file_name, f.target));
        out.push_str(&f.text);
        if !f.text.ends_with('\n') {
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// Splits networks by address family.
pub(crate) fn split_family(nets: &[IpNet]) -> (Vec<IpNet>, Vec<IpNet>) {
    nets.iter().partition(|n| matches!(n, IpNet::V4(_)))
}

/// Comment text safe inside double quotes (nft, iptables) and single quotes (PowerShell).
pub(crate) fn sanitize(s: &str, max: usize) -> String {
    let s: String = s
        .chars()
        .map(|c| match c {
            '"' | '\'' | '\\' | '\n' | '\r' | '`' | '$' => ' ',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    if s.chars().count() > max {
        s.chars().take(max).collect()
    } else {
        s
    }
}

/// Distinct zone names of the networks of a rule, for comments.
pub(crate) fn nets_text(nets: &[IpNet]) -> String {
    let set: BTreeSet<String> = nets.iter().map(|n| n.to_string()).collect();
    set.into_iter().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn site(text: &str, catalog: &Catalog) -> Site {
        Site::parse(text, std::path::Path::new("site.toml"), catalog).unwrap()
    }

    fn rule<'a>(plan: &'a Plan, host: &str, port: u16) -> Option<&'a Rule> {
        plan.hosts
            .iter()
            .find(|h| h.name == host)
            .unwrap()
            .rules
            .iter()
            .find(|r| r.port == PortRange::single(port))
    }

    const ZONES: &str = r#"
[[zones]]
name = "clients"
kind = "clients"
subnets = ["10.4.0.0/24"]
[[zones]]
name = "core"
kind = "management"
subnets = ["10.3.0.0/24"]
[[zones]]
name = "rec"
kind = "recording"
subnets = ["10.2.0.0/24"]
[[zones]]
name = "dmz"
kind = "dmz"
subnets = ["10.5.0.0/24"]
[[zones]]
name = "internet"
kind = "internet"
subnets = ["0.0.0.0/0"]
"#;

    /// An internet zone of 0.0.0.0/0 covers every other zone: the sources inside those zones
    /// are still theirs, and 0.0.0.0/0 itself reaches the DMZ web port and nothing else.
    #[test]
    fn internet_zone_covering_the_site_keeps_inner_sources() {
        let catalog = Catalog::builtin().unwrap();
        let text = format!(
            "{ZONES}
[[hosts]]
name = \"mgmt\"
address = \"10.3.0.10\"
roles = [\"xprotect:management-server\"]
[[hosts]]
name = \"rec\"
address = \"10.2.0.10\"
roles = [\"xprotect:recording-server\"]
[[hosts]]
name = \"mobile\"
address = \"10.5.0.10\"
roles = [\"xprotect:mobile-server\"]
"
        );
        let plan = plan(&site(&text, &catalog), &catalog);
        let srcs = |host: &str, port: u16| {
            rule(&plan, host, port)
                .unwrap_or_else(|| panic!("no rule for {host}:{port}"))
                .srcs
                .clone()
        };
        assert_eq!(srcs("mobile", 8082), [net("0.0.0.0/0")]);
        assert_eq!(srcs("mobile", 8081), [net("10.4.0.0/24")]);
        assert_eq!(srcs("mgmt", 9000), [net("10.2.0.10/32")]);
        assert!(srcs("mgmt", 443).contains(&net("10.4.0.0/24")));
        assert!(srcs("rec", 7563).contains(&net("10.5.0.10/32")));
        for (target, r) in plan
            .hosts
            .iter()
            .flat_map(|h| h.rules.iter().map(move |r| (h.name.as_str(), r)))
            .chain(plan.forward.iter().map(|r| ("router", r)))
        {
            if r.srcs.contains(&net("0.0.0.0/0")) {
                assert_eq!(
                    (r.port, &r.dsts[..]),
                    (PortRange::single(8082), &[net("10.5.0.10/32")][..]),
                    "{target}: the Internet reaches {r:?}"
                );
            }
        }
    }

    /// A configured source network that reaches over an internet subnet is Internet and stays
    /// out of a non-web port; one inside the site's own zones is kept, and so is the zone the
    /// host itself is in.
    #[test]
    fn sources_over_an_internet_subnet_are_refused_own_zone_kept() {
        let mut config = vigil_config::Config::with_data_dir("/d");
        config.events.allowed_sources = vec!["203.0.0.0/16".into(), "10.4.0.0/24".into()];
        config.events.enabled = true;
        let catalog = Catalog::with_vigil(&config).unwrap();
        let text = "
[[zones]]
name = \"clients\"
kind = \"clients\"
subnets = [\"10.4.0.0/24\"]
[[zones]]
name = \"outside\"
kind = \"internet\"
subnets = [\"203.0.113.0/24\"]
[[hosts]]
name = \"vms\"
address = \"10.4.0.10\"
roles = [\"vigil:management\", \"vigil:events\"]
";
        let plan = plan(&site(text, &catalog), &catalog);
        assert_eq!(rule(&plan, "vms", 1234).unwrap().srcs, [net("10.4.0.0/24")]);
        assert_eq!(rule(&plan, "vms", 8443).unwrap().srcs, [net("10.4.0.0/24")]);
    }
}
