"""Mutation testing of keras-lc's numeric modules with cosmic-ray, within a stated time.

What it does: copies the checkout's files (tracked and untracked, not ignored) into a scratch
folder, so the checkout itself is never mutated; for each chosen module, writes a cosmic-ray
configuration whose test command runs only the tests relevant to that module (first failure
stops it), checks that those tests pass unmutated, runs every mutant, and prints a table of
mutants, killed, equivalent, survived and score, where the score is killed over the
non-equivalent mutants. Mutants judged equivalent are listed with the reason in
`tools/mutation_equivalents.toml`, matched by module and mutated line (not by line number). A
session is a SQLite file in the scratch folder: a second run with the same `--workdir` resumes
where the first stopped, and `--minutes` stops the whole run at that time (the table then
counts the mutants not yet run as pending).

Why cosmic-ray and not mutmut: mutmut 3 forks its warmed-up pytest process once per mutant,
and TensorFlow's and XLA's thread pools are not fork-safe (a forked child can wait for ever on a
pool thread that was not copied). cosmic-ray applies one mutant to a file of the copy and runs
the test command in a fresh subprocess with a timeout, killing its whole process group: each
mutant pays Python's start and the import of Keras (about 3 s with the JAX backend, 5 s with
TensorFlow, hence `--backend jax` by default), but nothing can hang on a forked pool, and a
mutant that loops is ended and counted killed. pytest gets `--basetemp` in the scratch folder,
so no run spends time cleaning pytest's shared temporary folders.

Usage (cosmic-ray on PATH, or `--cosmic-ray PATH`):

    python tools/mutation.py --workdir ../mutation-scratch --minutes 60 fold_math training_sgd
    python tools/mutation.py --list              # the module sets and their tests
    python tools/mutation.py --workdir DIR --report-only --survivors fold_math
"""

import argparse
import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EQUIVALENTS = Path(__file__).with_name("mutation_equivalents.toml")
PYTEST = "-m pytest -p no:randomly -x -q -p no:cacheprovider"

#: name: (module mutated, tests run against each mutant (pytest arguments)).
MODULES = {
    "fold_math": ("keras_lc/fold_math.py", "tests/test_fold_math.py"),
    "folding": ("keras_lc/folding.py", "tests/test_fold.py tests/test_model_kinds.py "
                "tests/test_fold_portable.py -k 'not load_without_keras_lc'"),
    "initializers": (
        "keras_lc/initializers.py",
        "tests/test_initializers.py -k 'not tensorflow_and_jax'",
    ),
    "layers_base": ("keras_lc/layers/base.py", "tests/layers"),
    "layers_lc_conv2d": ("keras_lc/layers/lc_conv2d.py", "tests/layers"),
    "layers_shared_lc_conv2d": ("keras_lc/layers/shared_lc_conv2d.py", "tests/layers"),
    "layers_refocus_conv2d": ("keras_lc/layers/refocus_conv2d.py", "tests/layers"),
    "layers_compact_weights": ("keras_lc/layers/compact_weights.py", "tests/layers"),
    "training_sgd": ("keras_lc/training/sgd.py", "tests/training/test_sgd.py"),
    "zoo_blocks": (
        "keras_lc/zoo/blocks.py",
        "tests/zoo/test_blocks.py tests/zoo/test_block_references.py",
    ),
    "weights": ("keras_lc/weights.py", "tests/test_weights.py tests/test_manifest.py"),
}


def copy_tree(workdir, under=""):
    """The checkout's files (tracked and untracked, not ignored) in `workdir/tree`, and
    `workdir/shared` linked to the checkout's `../shared` (the CIFAR-10 archive's place);
    with `under`, only that folder's (the tests, copied again on every run)."""
    tree = workdir / "tree"
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z", "--", under or "."],
        check=True, capture_output=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            target = tree / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    shared = REPO.parent / "shared"
    if shared.exists() and not (workdir / "shared").exists():
        (workdir / "shared").symlink_to(shared.resolve(), target_is_directory=True)
    return tree


def environment(tree, backend):
    """The test commands' environment: the copy first on the path, one thread everywhere."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")])),
        KERAS_BACKEND=backend,
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        TF_NUM_INTRAOP_THREADS="1",
        TF_NUM_INTEROP_THREADS="1",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    return env


def test_command(python, name, workdir):
    tests = MODULES[name][1]
    return f"{python} {PYTEST} --basetemp={workdir / 'pytest' / name} {tests}"


def baseline(name, tree, workdir, python, env):
    """Run the module's tests unmutated; their wall time, or exit if they fail."""
    start = time.monotonic()
    result = subprocess.run(
        test_command(python, name, workdir), shell=True, cwd=tree, env=env,
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        sys.exit(f"{name}: the tests fail unmutated:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
    return time.monotonic() - start


def write_config(name, workdir, python, timeout):
    config = workdir / f"{name}.toml"
    command = test_command(python, name, workdir).replace("\\", "\\\\").replace('"', '\\"')
    config.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{MODULES[name][0]}"\n'
        f"timeout = {timeout:.0f}\n"
        "excluded-modules = []\n"
        f'test-command = "{command}"\n'
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
    )
    return config


def restore_source(name, tree, workdir):
    """The module's text as in the checkout, written into the copy if it differs there (a run
    stopped by a signal that cannot be caught leaves its last mutant in the copy); exits if the
    checkout's module changed since the module's session began (its mutants were made from the
    old text)."""
    source = (REPO / MODULES[name][0]).read_bytes()
    digest = hashlib.sha256(source).hexdigest()
    stamp, session = workdir / f"{name}.source-sha256", workdir / f"{name}.sqlite"
    if session.exists() and stamp.exists() and stamp.read_text().strip() != digest:
        sys.exit(f"{name}: {MODULES[name][0]} changed since its session in {workdir} began; "
                 f"remove {session.name} and {stamp.name} there to start it again")
    module = tree / MODULES[name][0]
    if module.read_bytes() != source:
        print(f"{name}: {MODULES[name][0]} in the copy differed from the checkout's; restored",
              flush=True)
        module.write_bytes(source)
    stamp.write_text(digest + "\n")
    return source


def run_module(name, args, tree, env, deadline):
    """Init (once) and exec the module's session until done or `deadline`."""
    workdir, session = args.workdir, args.workdir / f"{name}.sqlite"
    (workdir / "pytest").mkdir(exist_ok=True)  # pytest makes basetemp, not its parents
    module = tree / MODULES[name][0]
    original = restore_source(name, tree, workdir)
    seconds = baseline(name, tree, workdir, args.python, env)
    timeout = max(args.min_timeout, 4 * seconds)
    config = write_config(name, workdir, args.python, timeout)
    # A pyc of the unmutated module must not stand in for a same-size mutant written within
    # the same second: remove it; cosmic-ray runs the tests with PYTHONDONTWRITEBYTECODE.
    for pyc in module.parent.glob(f"__pycache__/{module.stem}.*.pyc"):
        pyc.unlink()
    if not session.exists() or session.stat().st_size == 0:
        subprocess.run([args.cosmic_ray, "init", str(config), str(session)], check=True, cwd=tree)
    elif args.rerun_survivors:  # after new tests: the survivors' results dropped, run again
        with sqlite3.connect(session) as db:
            db.execute("DELETE FROM work_results WHERE lower(test_outcome) = 'survived'")
    print(f"{name}: baseline {seconds:.1f} s, timeout {timeout:.0f} s per mutant", flush=True)
    process = subprocess.Popen(
        [args.cosmic_ray, "exec", str(config), str(session)], cwd=tree, env=env,
        # Its own process group (to stop it whole), not its own session: Linux's autogroup
        # scheduler shares the CPU fairly between sessions whatever their nice value, so a
        # session of its own would take a core from a foreground job however niced.
        process_group=0,
    )
    try:
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        print(f"{name}: time is up, stopping (resume with the same --workdir)", flush=True)
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=timeout + 30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    finally:
        if process.poll() is None:  # stopped by a signal (SIGTERM, Ctrl-C): cosmic-ray too
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        module.write_bytes(original)


def mutated_line(diff):
    """The first added line of a unified diff without its spaces (how equivalents are matched;
    cosmic-ray writes `x= 1.0` where the source had `x=0.0`)."""
    for line in (diff or "").splitlines():
        if line.startswith("+") and not line.startswith("+++"):
            return "".join(line[1:].split())
    return None


def load_equivalents():
    if not EQUIVALENTS.exists():
        return {}
    entries = tomllib.loads(EQUIVALENTS.read_text())["equivalent"]
    return {(entry["module"], "".join(entry["mutant"].split())): entry["reason"] for entry in entries}


def summarize(name, workdir, equivalents, show):
    """(mutants, killed, equivalent, survived, pending) of a session; survivors printed."""
    module = MODULES[name][0]
    with sqlite3.connect(workdir / f"{name}.sqlite") as db:
        rows = db.execute(
            "SELECT s.job_id, s.operator_name, s.start_pos_row, r.test_outcome, r.diff "
            "FROM mutation_specs s LEFT JOIN work_results r ON s.job_id = r.job_id"
        ).fetchall()
    killed = equivalent = survived = pending = 0
    for job, operator, row, outcome, diff in rows:
        if outcome is None:
            pending += 1
        elif outcome.lower() != "survived":  # killed, timed out (killed) or incompetent (raised)
            killed += 1
        elif (module, mutated_line(diff)) in equivalents:
            equivalent += 1
        else:
            survived += 1
            if show:
                print(f"--- {name} survivor {job} {operator} line {row}\n{diff}")
    return len(rows), killed, equivalent, survived, pending


def print_table(names, workdir):
    equivalents = load_equivalents()
    print("| module | mutants | killed | equivalent | survived | pending | score |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        if not (workdir / f"{name}.sqlite").exists():
            continue
        total, killed, equivalent, survived, pending = summarize(name, workdir, equivalents, False)
        run = killed + survived
        score = f"{100 * killed / run:.1f}%" if run else "-"
        print(f"| `{MODULES[name][0]}` | {total} | {killed} | {equivalent} | {survived} | "
              f"{pending} | {score} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"module sets (default all): {', '.join(MODULES)}")
    parser.add_argument("--workdir", type=Path, help="scratch folder (kept, to resume)")
    parser.add_argument("--minutes", type=float, default=60.0, help="stop the run after this")
    parser.add_argument("--backend", default="jax", help="KERAS_BACKEND of the tests")
    parser.add_argument("--python", default=sys.executable, help="the tests' interpreter")
    parser.add_argument("--cosmic-ray", default=shutil.which("cosmic-ray") or "cosmic-ray")
    parser.add_argument("--min-timeout", type=float, default=60.0,
                        help="per-mutant timeout floor in seconds (else 4x the baseline)")
    parser.add_argument("--rerun-survivors", action="store_true",
                        help="run the surviving mutants of an existing session again")
    parser.add_argument("--report-only", action="store_true", help="print the table, run nothing")
    parser.add_argument("--survivors", action="store_true", help="print each survivor's diff")
    parser.add_argument("--list", action="store_true", help="print the module sets and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, (module, tests) in MODULES.items():
            print(f"{name:26} {module:40} {tests}")
        return
    names = args.modules or list(MODULES)
    unknown = sorted(set(names) - set(MODULES))
    if unknown or args.workdir is None:
        parser.error(f"unknown module sets {unknown}" if unknown else "--workdir is required")
    args.workdir = args.workdir.resolve()
    if args.workdir.is_relative_to(REPO):
        parser.error("--workdir must lie outside the checkout (it holds a copy of it)")
    args.workdir.mkdir(parents=True, exist_ok=True)
    # SIGTERM (kill, a session's end) unwinds like Ctrl-C, so the copy gets its module back.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    start = time.monotonic()
    if not args.report_only:
        tree = args.workdir / "tree"
        copy_tree(args.workdir, under="" if not tree.exists() else "tests")
        env = environment(tree, args.backend)
        deadline = start + 60 * args.minutes
        for name in names:
            if time.monotonic() >= deadline:
                break
            run_module(name, args, tree, env, deadline)
    if args.survivors:
        equivalents = load_equivalents()
        for name in names:
            if (args.workdir / f"{name}.sqlite").exists():
                summarize(name, args.workdir, equivalents, True)
    print_table(names, args.workdir)
    print(f"wall time {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
