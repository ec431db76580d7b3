//! Loading a schema from a Pydantic model (`models.py::Class`) by running `python3`.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::{Error, Result};

/// The script run by `python3`: imports the file as a module and prints the class's
/// `model_json_schema()`. Exit code 3: pydantic missing; 4: no such class; 5: not a
/// Pydantic model.
const SCRIPT: &str = r#"
import importlib.util, json, sys
path, cls = sys.argv[1], sys.argv[2]
try:
    import pydantic  # noqa: F401
except ImportError:
    sys.exit(3)
spec = importlib.util.spec_from_file_location("rem_user_models", path)
module = importlib.util.module_from_spec(spec)
sys.modules["rem_user_models"] = module
spec.loader.exec_module(module)
model = getattr(module, cls, None)
if model is None:
    sys.exit(4)
if not hasattr(model, "model_json_schema"):
    sys.exit(5)
print(json.dumps(model.model_json_schema()))
"#;

/// Runs the interpreter `python` (e.g. `python3`; the CLI's `P8_PYTHON`) to export
/// `class` from the Python file `file` as a JSON Schema. This runs the file's code: the
/// CLI calls it on the client side only, never inside a server.
pub fn load_pydantic_schema(file: &Path, class: &str, python: &str) -> Result<Value> {
    if !file.is_file() {
        return Err(Error::Io {
            path: file.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let output = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(file)
        .arg(class)
        .output()
        .map_err(|e| {
            Error::Python(format!(
                "cannot run {python} to load {} ({e}); install Python 3 or register the schema as JSON/YAML",
                file.display()
            ))
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => serde_json::from_slice(&output.stdout).map_err(|e| {
            Error::Python(format!("{python} printed something that is not a JSON schema: {e}"))
        }),
        Some(3) => Err(Error::Python(format!(
            "pydantic is not installed for {python}; run `pip install pydantic` or register the schema as JSON/YAML"
        ))),
        Some(4) => Err(Error::Python(format!("{} has no class named '{class}'", file.display()))),
        Some(5) => Err(Error::Python(format!("'{class}' in {} is not a Pydantic model", file.display()))),
        _ => {
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("unknown error");
            Err(Error::Python(format!("loading {} failed: {last}", file.display())))
        }
    }
}
