use crucial_dso::shared;

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Bag<T> {
    items: Vec<T>,
}

#[shared]
impl<T> Bag<T> {
    pub fn len(&self) -> u64 {
        self.items.len() as u64
    }
}

fn main() {}
