//! One syslog message through the parser (RFC 5424, RFC 3164 and Cisco's variants), the
//! recognizers and the event conversion: never a panic, and the event always passes
//! `NewEvent::check` (the limits every stored event keeps); interface names the recognizers
//! found print back to themselves. Input: the arrival time (i64 BE), then the message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_syslog::event::{Origin, TimePolicy, to_event};
use vigil_syslog::iface::Interface;
use vigil_syslog::mapping::CameraMap;
use vigil_syslog::{parse, recognize};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let received_us = i64::from_be_bytes(data[..8].try_into().unwrap());
    let bytes = &data[8..];
    let Ok(msg) = parse(bytes, received_us) else {
        return;
    };
    let rec = recognize(&msg);
    if let Some(i) = rec.as_ref().and_then(|r| r.interface.as_ref()) {
        assert_eq!(Interface::parse(&i.to_string()).as_ref(), Some(i), "{i}");
    }
    let mut map = CameraMap::new();
    map.add_port("sw1", "Gi1/0/3", "lobby").unwrap();
    map.add_port("10.0.0.2", "ge-0/0/2", "garage").unwrap();
    map.add_mac("00:11:22:33:44:55", "yard").unwrap();
    for policy in [
        TimePolicy::default(),
        TimePolicy {
            assume_offset_s: Some(-50_400),
            max_future_us: i64::MAX,
            max_past_us: i64::MAX,
        },
    ] {
        let e = to_event(
            &msg,
            rec.as_ref(),
            &Origin {
                peer: "10.0.0.2",
                received_us,
            },
            &map,
            &policy,
        );
        if let Err(err) = e.check() {
            panic!("{err}: {e:?}");
        }
    }
});
