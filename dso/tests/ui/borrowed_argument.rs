use crucial_dso::shared;

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Names {
    names: Vec<String>,
}

#[shared]
impl Names {
    pub fn add(&mut self, name: &str) -> u64 {
        self.names.push(name.to_string());
        self.names.len() as u64
    }
}

fn main() {}
