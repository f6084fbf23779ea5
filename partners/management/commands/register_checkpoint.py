"""Register a checkpoint from a directory of shards.

Walks DIR, digests each file as a stream (constant memory, with a progress bar), copies
the files into artifact storage at their derived keys (``artifact_key``), then records
them: registration checks that the bytes are there. Re-running is safe: unchanged files
are skipped, and a file whose bytes differ from the registered ones is reported, neither
copied nor written.
"""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import ngettext
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from partners import actions
from partners.errors import ActionError
from partners.models import Artifact, Release
from partners.storage import artifact_key, artifact_storage, path_problem, sha256_of, store_artifact


class Command(BaseCommand):
    help = "Register (or re-check) a checkpoint's files from a directory."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("release", help="release slug, e.g. v4")
        parser.add_argument("tag", help="checkpoint tag, e.g. step-120000")
        parser.add_argument(
            "--from", dest="source", required=True, type=Path, help="directory of shards"
        )
        parser.add_argument("--training-step", type=int, default=None)
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        source: Path = options["source"]
        if not source.is_dir():
            raise CommandError(f"{source} is not a directory.")
        try:
            release = Release.objects.get(slug=options["release"])
        except Release.DoesNotExist:
            raise CommandError(f"No release {options['release']!r}.") from None
        tag = options["tag"]
        files = sorted(p for p in source.rglob("*") if p.is_file() and not p.is_symlink())
        if not files:
            raise CommandError(f"{source} holds no files.")
        for path in files:
            relative = path.relative_to(source).as_posix()
            if problem := path_problem(relative):
                raise CommandError(f"File {relative!r}: {problem}. [artifact_path_invalid]")

        specs = []
        console = Console(stderr=True)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=options["no_progress"],
        ) as progress:
            total = progress.add_task("sha256", total=sum(p.stat().st_size for p in files))
            for path in files:
                relative = path.relative_to(source).as_posix()
                with path.open("rb") as handle:
                    digest = sha256_of(handle, lambda n: progress.advance(total, n))
                specs.append(
                    actions.ArtifactSpec(
                        path=relative,
                        size=path.stat().st_size,
                        sha256=digest,
                        storage_key=artifact_key(release.slug, tag, relative),
                    )
                )
        # Copy first: registration refuses a file that is not in storage. A registered
        # file is never overwritten (if its bytes changed, registration refuses; if its
        # copy is incomplete, it is completed). An unregistered one is copied afresh (a
        # leftover of a refused run may hold other bytes), and removed again if
        # registration refuses, so no unregistered bytes stay at a checkpoint's keys.
        registered = dict(
            Artifact.objects.filter(checkpoint__release=release, checkpoint__tag=tag).values_list(
                "path", "sha256"
            )
        )
        storage = artifact_storage()
        copied = []
        try:
            for spec in specs:
                if registered.get(spec.path, spec.sha256) != spec.sha256:
                    continue
                if spec.path not in registered:
                    storage.delete(spec.storage_key)
                    copied.append(spec.storage_key)
                store_artifact(source / spec.path, spec.storage_key, spec.size)
            result = actions.register_checkpoint(
                actor=None,
                release=release,
                tag=tag,
                artifacts=specs,
                training_step=options["training_step"],
            )
        except ActionError as exc:
            for key in copied:
                storage.delete(key)
            raise CommandError(f"{exc.message} [{exc.code}]") from exc
        self.stdout.write(
            f"{result.checkpoint}: {len(result.added)} "
            f"{ngettext('file', 'files', len(result.added))} added, "
            f"{len(result.unchanged)} unchanged."
        )
