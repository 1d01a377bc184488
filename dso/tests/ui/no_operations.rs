use crucial_dso::shared;

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Quiet {
    count: i64,
}

#[shared]
impl Quiet {
    fn hidden(&self) -> i64 {
        self.count
    }
}

fn main() {}
