//! The media services (Media1 `trt` and Media2 `tr2`): GetProfiles and GetStreamUri requests
//! and the parsers of their answers, giving each profile's video encoding, resolution, frame
//! rate and bit rate in one shape whichever service answered.

use roxmltree::Node;

use crate::OnvifError;
use crate::device::{MAX_FIELD_CHARS, field, uri};
use crate::soap::{TR2, TRT, read_response};
use crate::xml::{self, escape};

/// Profiles read at most: real devices have a handful; more is a broken or hostile answer.
pub const MAX_PROFILES: usize = 64;

pub const GET_PROFILES: (&str, &str) = (
    "http://www.onvif.org/ver10/media/wsdl/GetProfiles",
    "<trt:GetProfiles/>",
);
pub const GET_PROFILES2: (&str, &str) = (
    "http://www.onvif.org/ver20/media/wsdl/GetProfiles",
    "<tr2:GetProfiles><tr2:Type>VideoEncoder</tr2:Type></tr2:GetProfiles>",
);
pub const GET_STREAM_URI_ACTION: &str = "http://www.onvif.org/ver10/media/wsdl/GetStreamUri";
pub const GET_STREAM_URI2_ACTION: &str = "http://www.onvif.org/ver20/media/wsdl/GetStreamUri";

/// RTSP over TCP (RTP interleaved), the transport Vigil records with.
pub fn stream_uri_body(profile_token: &str) -> String {
    format!(
        "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream><tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup><trt:ProfileToken>{}</trt:ProfileToken></trt:GetStreamUri>",
        escape(profile_token)
    )
}

pub fn stream_uri2_body(profile_token: &str) -> String {
    format!(
        "<tr2:GetStreamUri><tr2:Protocol>RTSP</tr2:Protocol><tr2:ProfileToken>{}</tr2:ProfileToken></tr2:GetStreamUri>",
        escape(profile_token)
    )
}

/// A media profile's video, as far as the device said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub token: String,
    pub name: String,
    /// Upper case as ONVIF writes it: `H264`, `H265`, `JPEG`, `MPEG4`; empty when the
    /// profile has no video encoder.
    pub encoding: String,
    pub width: u32,
    pub height: u32,
    pub frame_rate: Option<u32>,
    /// kbit/s.
    pub bitrate: Option<u32>,
}

impl Profile {
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

fn number(node: Option<Node<'_, '_>>, local: &str) -> Option<u32> {
    node.and_then(|n| xml::child_text(n, local))
        .and_then(|t| t.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0 && *v <= f64::from(u32::MAX))
        .map(|v| v as u32)
}

fn profile(p: Node<'_, '_>, encoder: Option<Node<'_, '_>>) -> Result<Profile, OnvifError> {
    let token = p
        .attribute("token")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(OnvifError::Missing("profile token"))?;
    if token.chars().count() > MAX_FIELD_CHARS {
        return Err(OnvifError::Malformed(format!(
            "a profile token is longer than {MAX_FIELD_CHARS} characters"
        )));
    }
    let resolution = encoder.and_then(|e| xml::child_any(e, "Resolution"));
    let rate = encoder.and_then(|e| xml::child_any(e, "RateControl"));
    Ok(Profile {
        token: token.to_owned(),
        name: field(p, "Name"),
        encoding: encoder
            .map(|e| {
                // Media2 also allows the encoding as an attribute on some firmware.
                xml::child_text(e, "Encoding")
                    .or_else(|| e.attribute("Encoding").map(str::to_owned))
                    .unwrap_or_default()
                    .chars()
                    .take(16)
                    .collect::<String>()
                    .to_ascii_uppercase()
                    .replace(".", "")
            })
            .unwrap_or_default(),
        width: number(resolution, "Width").unwrap_or(0),
        height: number(resolution, "Height").unwrap_or(0),
        frame_rate: number(rate, "FrameRateLimit"),
        bitrate: number(rate, "BitrateLimit"),
    })
}

fn too_many() -> OnvifError {
    OnvifError::Malformed(format!("more than {MAX_PROFILES} media profiles"))
}

/// The profiles of a Media1 GetProfiles answer.
pub fn parse_profiles(text: &str) -> Result<Vec<Profile>, OnvifError> {
    read_response(text, TRT, "GetProfilesResponse", |r| {
        let mut out = Vec::new();
        for p in xml::children_any(r, "Profiles") {
            if out.len() == MAX_PROFILES {
                return Err(too_many());
            }
            out.push(profile(p, xml::child_any(p, "VideoEncoderConfiguration"))?);
        }
        Ok(out)
    })
}

/// The profiles of a Media2 GetProfiles answer.
pub fn parse_profiles2(text: &str) -> Result<Vec<Profile>, OnvifError> {
    read_response(text, TR2, "GetProfilesResponse", |r| {
        let mut out = Vec::new();
        for p in xml::children_any(r, "Profiles") {
            if out.len() == MAX_PROFILES {
                return Err(too_many());
            }
            let encoder =
                xml::child_any(p, "Configurations").and_then(|c| xml::child_any(c, "VideoEncoder"));
            out.push(profile(p, encoder)?);
        }
        Ok(out)
    })
}

/// The RTSP URI of a Media1 GetStreamUri answer.
pub fn parse_stream_uri(text: &str) -> Result<String, OnvifError> {
    read_response(text, TRT, "GetStreamUriResponse", |r| {
        let u = xml::child_any(r, "MediaUri")
            .and_then(|m| xml::child_text(m, "Uri"))
            .unwrap_or_default();
        uri(&u, "stream URI")
    })
}

/// The RTSP URI of a Media2 GetStreamUri answer.
pub fn parse_stream_uri2(text: &str) -> Result<String, OnvifError> {
    read_response(text, TR2, "GetStreamUriResponse", |r| {
        uri(&xml::child_text(r, "Uri").unwrap_or_default(), "stream URI")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::{SOAP12, TT};

    fn env(body: &str) -> String {
        format!(
            r#"<s:Envelope xmlns:s="{SOAP12}" xmlns:trt="{TRT}" xmlns:tr2="{TR2}" xmlns:tt="{TT}"><s:Body>{body}</s:Body></s:Envelope>"#
        )
    }

    fn media1_profile(token: &str, enc: &str, w: u32, h: u32) -> String {
        format!(
            r#"<trt:Profiles token="{token}" fixed="true"><tt:Name>{token} name</tt:Name><tt:VideoEncoderConfiguration token="e"><tt:Name>e</tt:Name><tt:Encoding>{enc}</tt:Encoding><tt:Resolution><tt:Width>{w}</tt:Width><tt:Height>{h}</tt:Height></tt:Resolution><tt:RateControl><tt:FrameRateLimit>25</tt:FrameRateLimit><tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>4096</tt:BitrateLimit></tt:RateControl></tt:VideoEncoderConfiguration></trt:Profiles>"#
        )
    }

    #[test]
    fn media1_profiles_give_encoding_resolution_and_rates() {
        let text = env(&format!(
            "<trt:GetProfilesResponse>{}{}<trt:Profiles token=\"audio\"><tt:Name>a</tt:Name></trt:Profiles></trt:GetProfilesResponse>",
            media1_profile("main", "H264", 1920, 1080),
            media1_profile("sub", "JPEG", 640, 360)
        ));
        let p = parse_profiles(&text).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(
            p[0],
            Profile {
                token: "main".into(),
                name: "main name".into(),
                encoding: "H264".into(),
                width: 1920,
                height: 1080,
                frame_rate: Some(25),
                bitrate: Some(4096),
            }
        );
        assert_eq!(p[1].encoding, "JPEG");
        assert_eq!((p[2].encoding.as_str(), p[2].width), ("", 0));
    }

    #[test]
    fn media2_profiles_are_read_from_configurations() {
        let text = env(
            r#"<tr2:GetProfilesResponse><tr2:Profiles token="p0" fixed="true"><tr2:Name>Main</tr2:Name><tr2:Configurations><tr2:VideoEncoder token="v" GovLength="50"><tt:Name>v</tt:Name><tt:Encoding>H265</tt:Encoding><tt:Resolution><tt:Width>3840</tt:Width><tt:Height>2160</tt:Height></tt:Resolution><tt:RateControl ConstantBitRate="false"><tt:FrameRateLimit>30.0</tt:FrameRateLimit><tt:BitrateLimit>8192</tt:BitrateLimit></tt:RateControl></tr2:VideoEncoder></tr2:Configurations></tr2:Profiles></tr2:GetProfilesResponse>"#,
        );
        let p = parse_profiles2(&text).unwrap();
        assert_eq!(
            (p[0].encoding.as_str(), p[0].width, p[0].frame_rate),
            ("H265", 3840, Some(30))
        );
        // A Media1 answer is not a Media2 one.
        assert!(matches!(
            parse_profiles(&text),
            Err(OnvifError::Unexpected { .. })
        ));
    }

    #[test]
    fn profiles_without_token_or_too_many_are_refused() {
        let no_token = env(
            "<trt:GetProfilesResponse><trt:Profiles><tt:Name>x</tt:Name></trt:Profiles></trt:GetProfilesResponse>",
        );
        assert!(matches!(
            parse_profiles(&no_token),
            Err(OnvifError::Missing("profile token"))
        ));
        let many = env(&format!(
            "<trt:GetProfilesResponse>{}</trt:GetProfilesResponse>",
            (0..=MAX_PROFILES)
                .map(|i| media1_profile(&format!("p{i}"), "H264", 1, 1))
                .collect::<String>()
        ));
        assert!(matches!(
            parse_profiles(&many),
            Err(OnvifError::Malformed(_))
        ));
        let nonsense = env(&media1_profile("x", "H264", 0, 0)
            .replace("<tt:Width>0</tt:Width>", "<tt:Width>-5e99</tt:Width>")
            .replace("<trt:Profiles", "<trt:GetProfilesResponse><trt:Profiles")
            .replace(
                "</trt:Profiles>",
                "</trt:Profiles></trt:GetProfilesResponse>",
            ));
        assert_eq!(parse_profiles(&nonsense).unwrap()[0].width, 0);
    }

    #[test]
    fn stream_uris_from_both_services() {
        let m1 = env(
            "<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>rtsp://10.0.0.9:554/main</tt:Uri><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetStreamUriResponse>",
        );
        assert_eq!(parse_stream_uri(&m1).unwrap(), "rtsp://10.0.0.9:554/main");
        let m2 = env(
            "<tr2:GetStreamUriResponse><tr2:Uri>rtsp://h/x</tr2:Uri></tr2:GetStreamUriResponse>",
        );
        assert_eq!(parse_stream_uri2(&m2).unwrap(), "rtsp://h/x");
        let empty = env("<trt:GetStreamUriResponse><trt:MediaUri/></trt:GetStreamUriResponse>");
        assert!(matches!(
            parse_stream_uri(&empty),
            Err(OnvifError::Missing("stream URI"))
        ));
    }
}
