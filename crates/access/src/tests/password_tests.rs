use super::*;

#[test]
fn policy_refuses_short_passwords() {
    let e = check_password_policy("Xq7!vB2#", "alice").unwrap_err();
    assert_eq!(e, PasswordRejected::TooShort { len: 8, min: 12 });
    assert!(e.to_string().contains("at least 12"), "{e}");
    // 11 characters: still short, counted in characters not bytes.
    assert!(matches!(
        check_password_policy("ääääbcdefgh", "alice"),
        Err(PasswordRejected::TooShort { len: 11, .. })
    ));
}

#[test]
fn policy_refuses_common_passwords_of_allowed_length() {
    // On the list as such (12+ characters, so only the list catches them).
    for pw in [
        "1qaz2wsx3edc",
        "Q1W2E3R4T5Y6",
        "leavemealone",
        "qwerty123456",
    ] {
        assert_eq!(
            check_password_policy(pw, "alice"),
            Err(PasswordRejected::Common),
            "{pw}"
        );
    }
    // A common password with digits and punctuation appended.
    assert_eq!(
        check_password_policy("password1234!", "alice"),
        Err(PasswordRejected::Common)
    );
    assert_eq!(
        check_password_policy("Sunshine2024!!", "alice"),
        Err(PasswordRejected::Common)
    );
}

#[test]
fn common_list_is_embedded_and_large() {
    let n = super::super::password::tests_common_len();
    assert_eq!(n, 10_000);
}

#[test]
fn policy_accepts_a_good_password() {
    assert_eq!(check_password_policy(GOOD_PW, "alice"), Ok(()));
    assert_eq!(
        check_password_policy("correct horse battery staple", "bob"),
        Ok(())
    );
}

#[test]
fn policy_refuses_username_and_repetition() {
    assert_eq!(
        check_password_policy("my-name-is-alice!", "alice"),
        Err(PasswordRejected::ContainsUsername)
    );
    assert_eq!(
        check_password_policy("abababababababab", "alice"),
        Err(PasswordRejected::TooRepetitive { distinct: 2 })
    );
    assert!(matches!(
        check_password_policy(&"x".repeat(300), "alice"),
        Err(PasswordRejected::TooLong { .. })
    ));
}

#[test]
fn generated_passwords_are_strong_and_distinct() {
    let a = generate_password();
    let b = generate_password();
    assert_ne!(a, b);
    assert_eq!(a.len(), 23);
    assert_eq!(check_password_policy(&a, "admin"), Ok(()));
}

#[test]
fn hash_is_argon2id_with_owasp_parameters_and_verifies() {
    let phc = hash_password(GOOD_PW, HashParams::default()).unwrap();
    assert!(
        phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "unexpected PHC string {phc}"
    );
    assert!(verify_password(GOOD_PW, &phc));
    assert!(hash_is_current(&phc, HashParams::OWASP));
    // Two hashes of one password differ (random salt).
    assert_ne!(phc, hash_password(GOOD_PW, HashParams::default()).unwrap());
}

#[test]
fn wrong_password_and_garbage_hash_do_not_verify() {
    let phc = hash_password(GOOD_PW, HashParams::fast_for_tests()).unwrap();
    assert!(verify_password(GOOD_PW, &phc));
    assert!(!verify_password("velvet-otter-tramline-43", &phc));
    assert!(!verify_password(GOOD_PW, "not a hash"));
    assert!(!verify_password(GOOD_PW, ""));
    assert!(
        !hash_is_current(&phc, HashParams::OWASP),
        "test params are weaker than OWASP"
    );
}

#[test]
fn weak_hash_parameters_are_refused() {
    let e = HashParams::new(4096, 1, 1).unwrap_err();
    assert!(e.to_string().contains("OWASP"), "{e}");
    assert!(HashParams::new(19456, 1, 1).is_err());
    assert!(HashParams::new(19456, 2, 0).is_err());
    assert!(HashParams::new(47104, 1, 1).is_ok());
    assert!(HashParams::new(7168, 5, 1).is_ok());
    assert!(HashParams::new(12288, 3, 1).is_ok());
    assert!(HashParams::new(7168, 4, 1).is_err());
    assert_eq!(HashParams::default(), HashParams::OWASP);
}
