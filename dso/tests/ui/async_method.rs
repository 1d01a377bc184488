use crucial_dso::shared;

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    count: i64,
}

#[shared]
impl Tally {
    pub async fn add(&mut self, delta: i64) -> i64 {
        self.count += delta;
        self.count
    }
}

fn main() {}
