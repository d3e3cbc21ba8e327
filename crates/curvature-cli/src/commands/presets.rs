//! `curvature presets`: the bundled experiment presets with their grids and commands.

use anyhow::Result;

/// List the presets.
pub fn run() -> Result<()> {
    for p in curvature_lab::presets()? {
        println!("{}\n    {}\n    {}", p.name, p.description, p.paper);
        let grid: Vec<String> = p
            .grid()
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k} ∈ {{{}}}",
                    v.iter()
                        // A table value (several keys) by its label; the file has the rest.
                        .map(|x| match x {
                            serde_json::Value::Object(_) => {
                                curvature_lab::sweep::label(k, x)
                            }
                            _ => x.to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect();
        if grid.is_empty() {
            println!(
                "    run: curvature train --preset {} --out runs/{}",
                p.name, p.name
            );
        } else {
            println!(
                "    grid: {}\n    run: curvature sweep --preset {} --out runs/{}",
                grid.join(" × "),
                p.name,
                p.name
            );
        }
        for then in &p.then {
            println!(
                "    then: {}",
                then.replace("{out}", &format!("runs/{}", p.name))
            );
        }
    }
    Ok(())
}
