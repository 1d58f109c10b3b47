//! What a run needs before Codex starts, whichever backend drives it: the checked cwd and
//! extra directories opened again beneath their roots, private copies of the images, the
//! output-schema file (exec only; app-server takes the schema inline), and the run's
//! private names ([`isolation`]). All of it is file I/O, so it runs on the blocking pool,
//! never waiting on a runtime thread; only a run that writes no file and whose directories
//! open from the kernel's lookup caches (`RESOLVE_CACHED`, which never waits) is prepared
//! where it is.

use std::path::PathBuf;
use std::sync::Arc;

use super::images::PrivateImages;
use super::{RunnerConfig, cwd, image_reader, isolation, namespace, schema_file};
use crate::error::ToolError;
use crate::run::RunSpec;

/// A run, ready to spawn. Dropping it removes the image copies and the schema file.
#[derive(Debug)]
pub(super) struct Prepared {
    /// The spec as Codex sees it: private names when isolated, the image copies.
    pub spec: RunSpec,
    /// The checked cwd, held open: the supervisor starts in exactly this directory.
    pub workdir: cwd::OpenDir,
    /// The run's private names, when it is isolated.
    pub view: Option<isolation::View>,
    /// What the supervisor binds, when isolated.
    pub isolation: Option<namespace::Isolation>,
    /// The output schema's private file (exec), removed on drop.
    pub schema_file: Option<schema_file::SchemaFile>,
    /// The private image copies, removed on drop.
    pub images: PrivateImages,
}

/// Prepare `spec` for a spawn; `schema_file`: write the output schema to a private file.
pub(super) async fn prepare(
    config: &Arc<RunnerConfig>,
    spec: RunSpec,
    schema_file: bool,
) -> Result<Prepared, ToolError> {
    // Most runs write no file and start in directories the kernel has cached: prepared
    // here, without the blocking pool's two thread hand-offs (about 0.1 ms each on the
    // 2-vCPU VM, BENCHMARKS.md); the rest, and every miss, on the pool.
    let writes = !spec.images.is_empty() || (schema_file && spec.output_schema.is_some());
    if !writes && let Some(workdir) = open_dirs_cached(config, &spec) {
        return Ok(finish(config, spec, workdir, PrivateImages::none(), None));
    }
    let config = config.clone();
    tokio::task::spawn_blocking(move || prepare_blocking(&config, spec, schema_file))
        .await
        .map_err(|e| ToolError::Spawn {
            program: "2bot-mcp (run preparation)".to_owned(),
            source: std::io::Error::other(e.to_string()),
        })?
}

fn prepare_blocking(
    config: &RunnerConfig,
    mut spec: RunSpec,
    want_schema_file: bool,
) -> Result<Prepared, ToolError> {
    // The policy resolved these paths, maybe long ago (the call may have queued): open
    // them again, right before the spawn, beneath their root and through no symlink.
    // The supervisor starts in the very directory opened here; with namespaces it binds
    // it, and the extra directories (opened again the same way), at private names.
    let workdir = reopen("cwd", &spec.cwd, &config.roots)?;
    for (i, dir) in spec.add_dirs.iter().enumerate() {
        reopen(&format!("add_dirs[{i}]"), dir, &config.roots)?;
    }
    let owner = config.codex_user.as_ref().map(|(uid, gid, _)| (*uid, *gid));
    // Codex opens images by name: it gets private copies of the files opened here, so a
    // name swapped since the check cannot reach a file outside the roots. Read as Codex's
    // user when it has its own (issue 19 point 3). Removed on drop.
    let reader = image_reader::Reader::for_run(config.supervisor.as_deref(), owner);
    let images = PrivateImages::copy(
        &spec.images,
        &config.roots,
        &std::env::temp_dir(),
        owner,
        &reader,
    )
    .map_err(|(i, e)| ToolError::Image {
        param: format!("images[{i}]"),
        path: spec
            .images
            .get(i)
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        reason: e.to_string(),
    })?;
    if !images.paths().is_empty() {
        spec.images = images.paths().to_vec();
    }
    // Lives until the run ends: dropping it removes the file.
    let schema_file = match (&spec.output_schema, want_schema_file) {
        (Some(schema), true) => Some(
            schema_file::SchemaFile::create(&std::env::temp_dir(), schema, owner)
                .map_err(|e| ToolError::OutputSchemaFile(e.kind().to_string()))?,
        ),
        _ => None,
    };
    Ok(finish(config, spec, workdir, images, schema_file))
}

/// The cwd and the extra directories opened as [`prepare_blocking`] opens them, from the
/// kernel's lookup caches alone: `None` where that would wait (or fail: the waiting walk
/// then says why).
fn open_dirs_cached(config: &RunnerConfig, spec: &RunSpec) -> Option<cwd::OpenDir> {
    let workdir = cwd::open_beneath_cached(&config.roots, &spec.cwd)?;
    for dir in &spec.add_dirs {
        cwd::open_beneath_cached(&config.roots, dir)?;
    }
    Some(workdir)
}

/// The prepared run, with its private names when it is isolated: Codex gets names
/// nobody can re-point.
fn finish(
    config: &RunnerConfig,
    mut spec: RunSpec,
    workdir: cwd::OpenDir,
    images: PrivateImages,
    schema_file: Option<schema_file::SchemaFile>,
) -> Prepared {
    let view = (config.isolate && config.supervisor.is_some())
        .then(|| isolation::View::plan(&spec.cwd, &spec.add_dirs));
    let isolation = view.as_ref().map(|view| {
        spec.cwd = view.private_of(&spec.cwd);
        spec.add_dirs = spec.add_dirs.iter().map(|d| view.private_of(d)).collect();
        namespace::Isolation {
            roots: config.roots.clone(),
            binds: view
                .binds()
                .iter()
                .map(|b| (b.private.clone(), b.real.clone()))
                .collect(),
        }
    });
    Prepared {
        spec,
        workdir,
        view,
        isolation,
        schema_file,
        images,
    }
}

/// Open `path` (canonical, checked by the policy) beneath its root, following no symlink:
/// it is still the directory the policy allowed. The refusal names the checked path and
/// the roots, never where a name points now.
fn reopen(
    param: &str,
    path: &std::path::Path,
    roots: &[PathBuf],
) -> Result<cwd::OpenDir, ToolError> {
    cwd::open_beneath(roots, path).map_err(|e| ToolError::PathChanged {
        param: param.to_owned(),
        path: path.display().to_string(),
        roots: roots_text(roots),
        reason: e.to_string(),
    })
}

/// The allowed roots as a refusal names them.
fn roots_text(roots: &[PathBuf]) -> String {
    if roots.is_empty() {
        "any directory".to_owned()
    } else {
        roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }
}
