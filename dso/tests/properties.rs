//! Property tests (proptest): frames round-trip and arbitrary bytes never panic the decoder;
//! built-in objects behave as plain reference implementations (std collections, integers)
//! over random operation sequences.

use std::collections::{BTreeMap, BTreeSet};

use crucial_dso::core::codec::{decode_frame, encode_frame};
use crucial_dso::core::object::CallId;
use crucial_dso::core::protocol::{Action, Call, Request};
use crucial_dso::objects::{Counter, List, Map, Set};
use crucial_dso::Value;
use proptest::prelude::*;

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|state| Action::Create { state }),
        ("[a-z_]{1,12}", proptest::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(method, args)| Action::Invoke { method, args }),
        Just(Action::Release),
        Just(Action::Delete),
    ]
}

fn call() -> impl Strategy<Value = Call> {
    (any::<u64>(), any::<u64>(), any::<u64>(), "\\PC{0,24}", "[A-Za-z]{1,16}", action(), any::<u64>())
        .prop_map(|(session, seq, acked_below, key, type_name, action, history)| Call {
            id: CallId { session, seq },
            acked_below,
            key,
            type_name,
            action,
            history,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn calls_round_trip_through_frames_whole_and_in_pieces(call in call(), cut in 0usize..256) {
        let request = Request::Call(call);
        let mut frame = Vec::new();
        encode_frame(&request, &mut frame);
        let decoded = decode_frame::<Request>(&frame, 1 << 20).expect("a frame we encoded decodes");
        prop_assert_eq!(decoded, Some((request, frame.len())));
        let cut = cut.min(frame.len() - 1);
        prop_assert_eq!(decode_frame::<Request>(&frame[..cut], 1 << 20).expect("a prefix is no error"), None);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_frame::<Request>(&bytes, 1_024);
    }

    #[test]
    fn a_counter_is_a_wrapping_integer(deltas in proptest::collection::vec((0u8..4, any::<i64>()), 0..64)) {
        let mut counter = Counter::default();
        let mut reference: i64 = 0;
        for (op, delta) in deltas {
            match op {
                0 => { reference = reference.wrapping_add(delta); prop_assert_eq!(counter.add(delta), reference); }
                1 => { reference = reference.wrapping_add(1); prop_assert_eq!(counter.increment(), reference); }
                2 => { reference = reference.wrapping_sub(1); prop_assert_eq!(counter.decrement(), reference); }
                _ => { prop_assert_eq!(counter.reset(), reference); reference = 0; }
            }
            prop_assert_eq!(counter.get(), reference);
        }
    }

    #[test]
    fn a_list_is_a_vec(ops in proptest::collection::vec((0u8..9, 0u64..6, 0i64..4), 0..64)) {
        let mut list = List::default();
        let mut reference: Vec<Value> = Vec::new();
        for (op, index, item) in ops {
            let value = Value::Int(item);
            let at = index as usize;
            match op {
                0 => { list.add(value.clone()); reference.push(value); }
                1 => {
                    let ok = at <= reference.len();
                    prop_assert_eq!(list.add_at(index, value.clone()).is_ok(), ok);
                    if ok { reference.insert(at, value); }
                }
                2 => prop_assert_eq!(list.get(index).ok(), reference.get(at).cloned()),
                3 => {
                    let old = reference.get(at).cloned();
                    prop_assert_eq!(list.set(index, value.clone()).ok(), old.clone());
                    if old.is_some() { reference[at] = value; }
                }
                4 => {
                    let expected = (at < reference.len()).then(|| reference.remove(at));
                    prop_assert_eq!(list.remove_at(index).ok(), expected);
                }
                5 => {
                    let position = reference.iter().position(|held| *held == value);
                    prop_assert_eq!(list.index_of(value.clone()), position.map(|p| p as u64));
                    prop_assert_eq!(list.remove(value), position.map(|p| reference.remove(p)).is_some());
                }
                6 => {
                    let (from, to) = (at.min(reference.len()), (at + item as usize).min(reference.len() + 1));
                    let expected = (from <= to && to <= reference.len()).then(|| reference[from..to].to_vec());
                    prop_assert_eq!(list.sub_list(from as u64, to as u64).ok(), expected);
                }
                7 => { list.clear(); reference.clear(); }
                _ => prop_assert_eq!(list.contains(value.clone()), reference.contains(&value)),
            }
            prop_assert_eq!(list.size(), reference.len() as u64);
            prop_assert_eq!(list.to_vec(), reference.clone());
        }
    }

    #[test]
    fn a_map_is_a_btree_map(ops in proptest::collection::vec((0u8..6, 0i64..5, 0i64..5), 0..64)) {
        let mut map = Map::default();
        let mut reference: BTreeMap<Value, Value> = BTreeMap::new();
        for (op, key, value) in ops {
            let (key, value) = (Value::Int(key), Value::Int(value));
            match op {
                0 => prop_assert_eq!(map.put(key.clone(), value.clone()), reference.insert(key, value)),
                1 => prop_assert_eq!(map.get(key.clone()), reference.get(&key).cloned()),
                2 => prop_assert_eq!(map.remove(key.clone()), reference.remove(&key)),
                3 => {
                    let old = reference.get(&key).cloned();
                    prop_assert_eq!(map.put_if_absent(key.clone(), value.clone()), old.clone());
                    if old.is_none() { reference.insert(key, value); }
                }
                4 => prop_assert_eq!(map.contains_key(key.clone()), reference.contains_key(&key)),
                _ => { map.clear(); reference.clear(); }
            }
            prop_assert_eq!(map.size(), reference.len() as u64);
            prop_assert_eq!(map.keys(), reference.keys().cloned().collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_set_is_a_btree_set(ops in proptest::collection::vec((0u8..4, 0i64..6), 0..64)) {
        let mut set = Set::default();
        let mut reference: BTreeSet<Value> = BTreeSet::new();
        for (op, item) in ops {
            let value = Value::Int(item);
            match op {
                0 => prop_assert_eq!(set.add(value.clone()), reference.insert(value)),
                1 => prop_assert_eq!(set.remove(value.clone()), reference.remove(&value)),
                2 => prop_assert_eq!(set.contains(value.clone()), reference.contains(&value)),
                _ => { set.clear(); reference.clear(); }
            }
            prop_assert_eq!(set.size(), reference.len() as u64);
            prop_assert_eq!(set.to_vec(), reference.iter().cloned().collect::<Vec<_>>());
        }
    }
}
