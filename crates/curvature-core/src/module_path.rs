//! The dotted path of a tensor inside a burn module (`layer1.0.conv1.weight`), as PyTorch's
//! `named_parameters()` spells it.

/// A path built while a burn `ModuleVisitor` / `ModuleMapper` walks a module: call
/// [`enter`](Self::enter) and [`exit`](Self::exit) from `enter_module` / `exit_module`.
///
/// Enum modules (burn's container type `Enum:<Name>`, e.g. `curvature_nets::AnyModel`) are
/// transparent: a network chosen at run time names its tensors as the network itself does, so
/// weights files and parameter names do not depend on how the network was held.
#[derive(Debug, Clone, Default)]
pub struct ModulePath {
    parts: Vec<String>,
}

/// Whether a burn container type is an enum module's (its variants do not name a path level).
fn is_enum(container_type: &str) -> bool {
    container_type.starts_with("Enum:")
}

impl ModulePath {
    /// The empty path (the root module).
    pub fn new() -> Self {
        Self::default()
    }

    /// Enter field or variant `name` of a container of type `container_type`.
    pub fn enter(&mut self, name: &str, container_type: &str) {
        if !is_enum(container_type) {
            self.parts.push(name.to_string());
        }
    }

    /// Leave what the matching [`enter`](Self::enter) entered.
    pub fn exit(&mut self, container_type: &str) {
        if !is_enum(container_type) {
            self.parts.pop();
        }
    }

    /// The path, dot-separated (`""` at the root).
    pub fn dotted(&self) -> String {
        self.parts.join(".")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_levels_are_transparent() {
        let mut p = ModulePath::new();
        p.enter("PreResNet", "Enum:AnyModel");
        p.enter("layer1", "Struct:PreResNet");
        p.enter("0", "Vec");
        assert_eq!(p.dotted(), "layer1.0");
        p.exit("Vec");
        p.exit("Struct:PreResNet");
        assert_eq!(p.dotted(), "");
        p.exit("Enum:AnyModel");
        p.enter("fc", "Struct:Mlp");
        assert_eq!(p.dotted(), "fc");
    }
}
