use super::dot_stuffed;

#[test]
fn lines_that_start_with_a_dot_get_another() {
    assert_eq!(
        dot_stuffed(b".a\r\nb.\r\n..c\r\n.").as_deref(),
        Some("..a\r\nb.\r\n...c\r\n..")
    );
    assert_eq!(
        dot_stuffed(b"a\r\n\r\n.\r\n.\r\r\n").as_deref(),
        Some("a\r\n\r\n..\r\n..\r\r\n")
    );
    assert_eq!(dot_stuffed(b"\xff"), None);
}
