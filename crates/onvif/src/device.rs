//! The device service (`tds`): the requests Vigil sends (system time, device information,
//! services or capabilities, users, SetUser) and the parsers of their answers.

use roxmltree::Node;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::OnvifError;
use crate::soap::{TDS, TR2, TRT, TT, read_response};
use crate::xml::{self, escape};

/// Identity fields longer than this are cut: they are shown and stored, never interpreted.
pub const MAX_FIELD_CHARS: usize = 256;
/// A service address or stream URI longer than this is refused rather than cut.
pub const MAX_URI_CHARS: usize = 2048;

pub(crate) fn field(node: Node<'_, '_>, local: &str) -> String {
    xml::child_text(node, local)
        .map(|t| t.chars().take(MAX_FIELD_CHARS).collect())
        .unwrap_or_default()
}

pub(crate) fn uri(text: &str, what: &'static str) -> Result<String, OnvifError> {
    if text.chars().count() > MAX_URI_CHARS {
        return Err(OnvifError::Malformed(format!(
            "the {what} is longer than {MAX_URI_CHARS} characters"
        )));
    }
    if text.is_empty() {
        return Err(OnvifError::Missing(what));
    }
    Ok(text.to_owned())
}

pub const GET_SYSTEM_DATE_AND_TIME: (&str, &str) = (
    "http://www.onvif.org/ver10/device/wsdl/GetSystemDateAndTime",
    "<tds:GetSystemDateAndTime/>",
);
pub const GET_DEVICE_INFORMATION: (&str, &str) = (
    "http://www.onvif.org/ver10/device/wsdl/GetDeviceInformation",
    "<tds:GetDeviceInformation/>",
);
pub const GET_SERVICES: (&str, &str) = (
    "http://www.onvif.org/ver10/device/wsdl/GetServices",
    "<tds:GetServices><tds:IncludeCapability>false</tds:IncludeCapability></tds:GetServices>",
);
pub const GET_CAPABILITIES: (&str, &str) = (
    "http://www.onvif.org/ver10/device/wsdl/GetCapabilities",
    "<tds:GetCapabilities><tds:Category>All</tds:Category></tds:GetCapabilities>",
);
pub const GET_USERS: (&str, &str) = (
    "http://www.onvif.org/ver10/device/wsdl/GetUsers",
    "<tds:GetUsers/>",
);
pub const SET_USER_ACTION: &str = "http://www.onvif.org/ver10/device/wsdl/SetUser";

/// The body of a SetUser request that gives `username` (at `level`) the password `password`.
/// It holds the password in clear, so it is only sent over a link that encrypts it.
pub fn set_user_body(username: &str, password: &str, level: &str) -> String {
    format!(
        "<tds:SetUser><tds:User><tt:Username>{}</tt:Username><tt:Password>{}</tt:Password><tt:UserLevel>{}</tt:UserLevel></tds:User></tds:SetUser>",
        escape(username),
        escape(password),
        escape(level)
    )
}

/// The device's clock (UTC), from a GetSystemDateAndTime answer; `None` when the device does
/// not say (WS-Security then uses this server's clock).
pub fn parse_system_date_time(text: &str) -> Result<Option<OffsetDateTime>, OnvifError> {
    read_response(text, TDS, "GetSystemDateAndTimeResponse", |r| {
        let Some(utc) =
            xml::child_any(r, "SystemDateAndTime").and_then(|s| xml::child_any(s, "UTCDateTime"))
        else {
            return Ok(None);
        };
        let num = |parent: Option<Node<'_, '_>>, local: &str| -> Option<i64> {
            parent
                .and_then(|p| xml::child_text(p, local))
                .and_then(|t| t.parse().ok())
        };
        let d = xml::child_any(utc, "Date");
        let t = xml::child_any(utc, "Time");
        let parts = (
            num(d, "Year"),
            num(d, "Month"),
            num(d, "Day"),
            num(t, "Hour"),
            num(t, "Minute"),
            num(t, "Second"),
        );
        let (Some(y), Some(mo), Some(day), Some(h), Some(mi), Some(s)) = parts else {
            return Ok(None);
        };
        let date = i32::try_from(y)
            .ok()
            .zip(u8::try_from(mo).ok().and_then(|m| Month::try_from(m).ok()))
            .zip(u8::try_from(day).ok())
            .and_then(|((y, m), d)| Date::from_calendar_date(y, m, d).ok());
        let time = u8::try_from(h)
            .ok()
            .zip(u8::try_from(mi).ok())
            .zip(u8::try_from(s).ok())
            .and_then(|((h, m), s)| Time::from_hms(h, m, s).ok());
        Ok(date
            .zip(time)
            .map(|(d, t)| PrimitiveDateTime::new(d, t).assume_utc()))
    })
}

/// What a device says it is (GetDeviceInformation).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceInformation {
    pub manufacturer: String,
    pub model: String,
    pub firmware_version: String,
    pub serial_number: String,
    pub hardware_id: String,
}

pub fn parse_device_information(text: &str) -> Result<DeviceInformation, OnvifError> {
    read_response(text, TDS, "GetDeviceInformationResponse", |r| {
        Ok(DeviceInformation {
            manufacturer: field(r, "Manufacturer"),
            model: field(r, "Model"),
            firmware_version: field(r, "FirmwareVersion"),
            serial_number: field(r, "SerialNumber"),
            hardware_id: field(r, "HardwareId"),
        })
    })
}

/// One service a device offers: its namespace (which service) and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub namespace: String,
    pub xaddr: String,
}

/// The services of a GetServices answer.
pub fn parse_services(text: &str) -> Result<Vec<Service>, OnvifError> {
    read_response(text, TDS, "GetServicesResponse", |r| {
        let mut out = Vec::new();
        for s in xml::children_any(r, "Service") {
            let (Some(ns), Some(addr)) =
                (xml::child_text(s, "Namespace"), xml::child_text(s, "XAddr"))
            else {
                continue;
            };
            out.push(Service {
                namespace: ns,
                xaddr: uri(&addr, "service address")?,
            });
        }
        Ok(out)
    })
}

/// The services of a GetCapabilities answer (devices that predate GetServices), as the same
/// namespace and address pairs GetServices gives.
pub fn parse_capabilities(text: &str) -> Result<Vec<Service>, OnvifError> {
    read_response(text, TDS, "GetCapabilitiesResponse", |r| {
        let caps = xml::child_any(r, "Capabilities").ok_or(OnvifError::Missing("Capabilities"))?;
        let mut out = Vec::new();
        for (local, ns) in [("Device", TDS), ("Media", TRT)] {
            if let Some(addr) =
                xml::child_any(caps, local).and_then(|c| xml::child_text(c, "XAddr"))
            {
                out.push(Service {
                    namespace: ns.to_owned(),
                    xaddr: uri(&addr, "service address")?,
                });
            }
        }
        // Media2 is announced under Extension by the devices that report it here at all.
        if let Some(addr) = xml::child_any(caps, "Extension")
            .and_then(|e| xml::child_any(e, "Media2"))
            .and_then(|c| xml::child_text(c, "XAddr"))
        {
            out.push(Service {
                namespace: TR2.to_owned(),
                xaddr: uri(&addr, "service address")?,
            });
        }
        Ok(out)
    })
}

/// A user account on the device (GetUsers never returns passwords).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub username: String,
    /// `Administrator`, `Operator`, `User`, `Anonymous` or `Extended`.
    pub level: String,
}

pub fn parse_users(text: &str) -> Result<Vec<User>, OnvifError> {
    read_response(text, TDS, "GetUsersResponse", |r| {
        Ok(xml::children_any(r, "User")
            .filter_map(|u| {
                let username = xml::child_text(u, "Username")?;
                Some(User {
                    username: username.chars().take(MAX_FIELD_CHARS).collect(),
                    level: field(u, "UserLevel"),
                })
            })
            .collect())
    })
}

/// A SetUser answer: empty when the change was made.
pub fn parse_set_user(text: &str) -> Result<(), OnvifError> {
    read_response(text, TDS, "SetUserResponse", |_| Ok(()))
}

/// The ONVIF schema namespace, for parsers that check where a device put its elements.
pub const SCHEMA: &str = TT;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::SOAP12;

    fn env(body: &str) -> String {
        format!(
            r#"<s:Envelope xmlns:s="{SOAP12}" xmlns:tds="{TDS}" xmlns:tt="{TT}"><s:Body>{body}</s:Body></s:Envelope>"#
        )
    }

    #[test]
    fn device_information_is_read_and_long_fields_are_cut() {
        let long = "M".repeat(5000);
        let text = env(&format!(
            "<tds:GetDeviceInformationResponse><tds:Manufacturer> Acme </tds:Manufacturer><tds:Model>{long}</tds:Model><tds:FirmwareVersion>1.2</tds:FirmwareVersion><tds:SerialNumber>SN-1</tds:SerialNumber><tds:HardwareId>hw</tds:HardwareId></tds:GetDeviceInformationResponse>"
        ));
        let info = parse_device_information(&text).unwrap();
        assert_eq!(info.manufacturer, "Acme");
        assert_eq!(info.model.len(), MAX_FIELD_CHARS);
        assert_eq!(info.serial_number, "SN-1");
        assert_eq!(info.firmware_version, "1.2");
    }

    #[test]
    fn services_and_capabilities_name_the_media_address() {
        let s = env(&format!(
            "<tds:GetServicesResponse><tds:Service><tds:Namespace>{TRT}</tds:Namespace><tds:XAddr>http://10.0.0.9/onvif/media</tds:XAddr></tds:Service><tds:Service><tds:Namespace>{TDS}</tds:Namespace></tds:Service></tds:GetServicesResponse>"
        ));
        assert_eq!(
            parse_services(&s).unwrap(),
            vec![Service {
                namespace: TRT.into(),
                xaddr: "http://10.0.0.9/onvif/media".into()
            }]
        );
        let c = env(
            "<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Device><tt:XAddr>http://h/d</tt:XAddr></tt:Device><tt:Media><tt:XAddr>http://h/m</tt:XAddr></tt:Media><tt:Extension><tt:Media2><tt:XAddr>http://h/m2</tt:XAddr></tt:Media2></tt:Extension></tds:Capabilities></tds:GetCapabilitiesResponse>",
        );
        let caps = parse_capabilities(&c).unwrap();
        assert_eq!(caps.len(), 3);
        assert_eq!(caps[1].xaddr, "http://h/m");
        assert_eq!(caps[2].namespace, TR2);
        let huge = env(&format!(
            "<tds:GetServicesResponse><tds:Service><tds:Namespace>x</tds:Namespace><tds:XAddr>http://{}</tds:XAddr></tds:Service></tds:GetServicesResponse>",
            "a".repeat(MAX_URI_CHARS)
        ));
        assert!(matches!(
            parse_services(&huge),
            Err(OnvifError::Malformed(_))
        ));
    }

    #[test]
    fn users_the_clock_and_set_user() {
        let u = env(
            "<tds:GetUsersResponse><tds:User><tt:Username>admin</tt:Username><tt:UserLevel>Administrator</tt:UserLevel></tds:User><tds:User><tt:UserLevel>User</tt:UserLevel></tds:User></tds:GetUsersResponse>",
        );
        assert_eq!(
            parse_users(&u).unwrap(),
            vec![User {
                username: "admin".into(),
                level: "Administrator".into()
            }]
        );
        let t = env(
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:UTCDateTime><tt:Time><tt:Hour>7</tt:Hour><tt:Minute>50</tt:Minute><tt:Second>45</tt:Second></tt:Time><tt:Date><tt:Year>2010</tt:Year><tt:Month>9</tt:Month><tt:Day>16</tt:Day></tt:Date></tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>",
        );
        let when = parse_system_date_time(&t).unwrap().unwrap();
        assert_eq!(when.unix_timestamp(), 1_284_623_445);
        let nonsense = t.replace("<tt:Month>9</tt:Month>", "<tt:Month>13</tt:Month>");
        assert_eq!(parse_system_date_time(&nonsense).unwrap(), None);
        assert!(parse_set_user(&env("<tds:SetUserResponse/>")).is_ok());
        assert!(matches!(
            parse_set_user(&env("<tds:GetUsersResponse/>")),
            Err(OnvifError::Unexpected { .. })
        ));
    }

    #[test]
    fn the_set_user_body_escapes_what_it_carries() {
        let b = set_user_body("op", "p<&>w", "Operator");
        assert!(
            b.contains("<tt:Password>p&lt;&amp;&gt;w</tt:Password>"),
            "{b}"
        );
    }
}
