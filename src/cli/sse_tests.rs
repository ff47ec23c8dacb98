use super::*;

fn event(event: &str, data: &str, id: &str) -> SseEvent {
    SseEvent {
        event: event.to_string(),
        data: data.to_string(),
        id: id.to_string(),
    }
}

fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    chunks.iter().flat_map(|chunk| parser.feed(chunk)).collect()
}

#[test]
fn an_event_ends_at_a_blank_line() {
    let events = parse_all(&[b"event: transition\nid: 7\ndata: {\"seq\":7}\n\n"]);
    assert_eq!(events, vec![event("transition", "{\"seq\":7}", "7")]);
}

#[test]
fn data_lines_join_with_newlines() {
    let events = parse_all(&[b"data: first\ndata:second\ndata\n\n"]);
    assert_eq!(events, vec![event("message", "first\nsecond\n", "")]);
}

#[test]
fn comments_are_keep_alives() {
    let events = parse_all(&[b": keep-alive\n\n:\n\ndata: x\n: inside an event\n\n"]);
    assert_eq!(events, vec![event("message", "x", "")]);
}

#[test]
fn crlf_and_cr_end_lines() {
    let events = parse_all(&[b"id: 1\r\ndata: a\r\n\r\nid: 2\rdata: b\r\r"]);
    assert_eq!(
        events,
        vec![event("message", "a", "1"), event("message", "b", "2")]
    );
}

#[test]
fn events_split_across_chunks_anywhere() {
    let stream = "event: transition\r\nid: 41\r\ndata: {\"phase\":\"Progressing\",\"é\":1}\r\n\r\n\
                  event: transition\nid: 42\ndata: {\"phase\":\"Succeeded\"}\n\n";
    let whole = parse_all(&[stream.as_bytes()]);
    assert_eq!(whole.len(), 2);
    for split in 1..stream.len() {
        let (head, tail) = stream.as_bytes().split_at(split);
        assert_eq!(parse_all(&[head, tail]), whole, "split at {split}");
    }
    let bytes: Vec<&[u8]> = stream.as_bytes().chunks(1).collect();
    assert_eq!(parse_all(&bytes), whole);
}

#[test]
fn ids_carry_over_and_count_only_once_dispatched() {
    let mut parser = SseParser::new();
    let events = parser.feed(b"id: 5\ndata: a\n\ndata: b\n\nid: 6\ndata: cut off");
    assert_eq!(
        events,
        vec![event("message", "a", "5"), event("message", "b", "5")]
    );
    assert_eq!(parser.last_event_id(), "5");
    assert_eq!(parser.feed(b"\n\n"), vec![event("message", "cut off", "6")]);
    assert_eq!(parser.last_event_id(), "6");
}

#[test]
fn an_event_without_data_is_not_dispatched_but_sets_the_id() {
    let mut parser = SseParser::new();
    assert!(parser.feed(b"event: transition\nid: 9\n\n").is_empty());
    assert_eq!(parser.last_event_id(), "9");
    // Its type does not leak into the next event.
    assert_eq!(
        parser.feed(b"data: x\n\n"),
        vec![event("message", "x", "9")]
    );
}

#[test]
fn fields_follow_the_spec() {
    let mut parser = SseParser::new();
    let events =
        parser.feed(b"\xEF\xBB\xBFdata:  two spaces\nretry: 3000\nunknown: x\nid: a\0b\n\n");
    assert_eq!(events, vec![event("message", " two spaces", "")]);
    assert_eq!(parser.retry(), Some(Duration::from_millis(3000)));
    parser.feed(b"retry: soon\n\n");
    assert_eq!(parser.retry(), Some(Duration::from_millis(3000)));
}
