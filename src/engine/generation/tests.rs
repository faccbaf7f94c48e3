use super::*;
use crate::engine::sampler::argmax;

/// Ids below 256 are single bytes; 256 ends the generation; 257 is a control token.
struct Bytes;
const EOS: u32 = 256;
const VOCAB: usize = 258;

impl TokenText for Bytes {
    fn piece(&self, id: u32) -> Vec<u8> {
        if id < 256 {
            vec![id as u8]
        } else {
            Vec::new()
        }
    }
    fn is_end_of_generation(&self, id: u32) -> bool {
        id == EOS
    }
}

struct Greedy;
impl TokenSampler for Greedy {
    fn sample(&mut self, logits: &[f32], _history: &[u32]) -> u32 {
        argmax(logits)
    }
}

/// Logits that make `id` the greedy choice.
fn want(id: u32) -> Vec<f32> {
    let mut l = vec![0.0; VOCAB];
    l[id as usize] = 1.0;
    l
}

fn machine(params: &GenerateParams, room: usize) -> Generation<'static> {
    Generation::new(params, Box::new(Greedy), &Bytes, &[1, 2, 3], 1, room)
}

fn token(token: u32, text: &str) -> Step {
    Step::Token {
        token,
        text: text.to_string(),
    }
}

fn done(finish: FinishReason, text: &str) -> Step {
    Step::Done {
        finish,
        text: text.to_string(),
    }
}

fn with_stops(stops: &[&str]) -> GenerateParams {
    GenerateParams {
        stop: stops.iter().map(|s| s.to_string()).collect(),
        ..GenerateParams::default()
    }
}

#[test]
fn a_stop_string_spanning_tokens_ends_the_generation_before_it() {
    let mut g = machine(&with_stops(&["cd"]), 100);
    assert_eq!(g.step(&want(b'a' as u32)), token(b'a' as u32, "a"));
    assert_eq!(g.step(&want(b'c' as u32)), token(b'c' as u32, ""));
    assert_eq!(g.step(&want(b'd' as u32)), done(FinishReason::Stop, ""));
    assert_eq!(g.tokens(), &[b'a' as u32, b'c' as u32, b'd' as u32]);
    assert_eq!(g.finish(), Some(FinishReason::Stop));
}

#[test]
fn a_held_back_prefix_is_released_at_the_end() {
    let mut g = machine(&with_stops(&["xyz"]), 100);
    assert_eq!(g.step(&want(b'x' as u32)), token(b'x' as u32, ""));
    assert_eq!(g.step(&want(b'y' as u32)), token(b'y' as u32, ""));
    assert_eq!(g.step(&want(EOS)), done(FinishReason::Stop, "xy"));
    assert_eq!(g.generated_tokens(), 2);
    // Diverging from the stop string releases the held text at once.
    let mut g = machine(&with_stops(&["xyz"]), 100);
    g.step(&want(b'x' as u32));
    assert_eq!(g.step(&want(b'a' as u32)), token(b'a' as u32, "xa"));
}

#[test]
fn a_character_split_across_tokens_is_emitted_whole() {
    let [lead, cont] = *"é".as_bytes() else {
        unreachable!()
    };
    let mut g = machine(&GenerateParams::default(), 100);
    assert_eq!(g.step(&want(lead as u32)), token(lead as u32, ""));
    assert_eq!(g.step(&want(cont as u32)), token(cont as u32, "é"));
    // An incomplete character at the token limit is flushed as U+FFFD.
    let params = GenerateParams {
        max_tokens: Some(1),
        ..GenerateParams::default()
    };
    let mut g = machine(&params, 100);
    assert_eq!(
        g.step(&want(lead as u32)),
        done(FinishReason::Length, "\u{FFFD}")
    );
}

#[test]
fn a_complete_json_object_ends_the_generation() {
    let params = GenerateParams {
        json: true,
        ..GenerateParams::default()
    };
    let mut g = machine(&params, 100);
    assert_eq!(g.step(&want(b'{' as u32)), token(b'{' as u32, "{"));
    assert_eq!(g.step(&want(b'}' as u32)), done(FinishReason::Stop, "}"));
    // The constraint refuses what would break the object: greedy wants 'a', gets '{'.
    let mut g = machine(&params, 100);
    let mut l = want(b'a' as u32);
    l[b'{' as usize] = 0.5;
    assert_eq!(g.step(&l), token(b'{' as u32, "{"));
}

#[test]
fn json_with_no_room_for_an_object_ends_as_length_without_text() {
    let params = GenerateParams {
        json: true,
        max_tokens: Some(1),
        ..GenerateParams::default()
    };
    let mut g = machine(&params, 100);
    assert_eq!(g.step(&want(b'{' as u32)), done(FinishReason::Length, ""));
    assert!(g.tokens().is_empty());
}

#[test]
fn zero_max_tokens_gives_no_token_and_finishes_as_length() {
    let params = GenerateParams {
        max_tokens: Some(0),
        ..GenerateParams::default()
    };
    let mut g = machine(&params, 100);
    assert_eq!(g.step(&want(b'a' as u32)), done(FinishReason::Length, ""));
    assert_eq!(g.generated_tokens(), 0);
    // Stepping after the end changes nothing.
    assert_eq!(g.step(&want(b'a' as u32)), done(FinishReason::Length, ""));
    assert_eq!(g.into_tokens(), Vec::<u32>::new());
}

#[test]
fn the_end_of_generation_token_stops_and_is_not_counted() {
    let mut g = machine(&GenerateParams::default(), 100);
    assert_eq!(g.step(&want(b'a' as u32)), token(b'a' as u32, "a"));
    assert_eq!(g.step(&want(EOS)), done(FinishReason::Stop, ""));
    assert_eq!(g.tokens(), &[b'a' as u32]);
    assert_eq!(g.history(), &[1, 2, 3, b'a' as u32]);
    assert_eq!((g.prompt_tokens(), g.cached_tokens()), (3, 1));
}

#[test]
fn the_context_room_limits_the_output_like_max_tokens() {
    let params = GenerateParams {
        max_tokens: Some(5),
        ..GenerateParams::default()
    };
    let mut g = machine(&params, 2);
    assert_eq!(g.step(&want(b'a' as u32)), token(b'a' as u32, "a"));
    assert_eq!(g.step(&want(b'b' as u32)), done(FinishReason::Length, "b"));
    // Control tokens count but print nothing.
    let mut g = machine(&GenerateParams::default(), 100);
    assert_eq!(g.step(&want(257)), token(257, ""));
}
