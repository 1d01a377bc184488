use crucial_dso::{shared, Outcome};

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Gate {
    open: bool,
}

#[shared]
impl Gate {
    pub fn pass(&mut self) -> Outcome<bool> {
        Outcome::Done(self.open)
    }
}

fn main() {}
