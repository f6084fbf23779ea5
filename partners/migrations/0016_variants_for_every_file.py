"""Every file of a fingerprinted release has a variant per partner holding a commitment
(docs/fingerprints.md, *Serving*): a file is served only once its variant is ready, so no
byte reaches the partner before its commitment is sealed. Files that had none (not
safetensors, written before this rule) get one: ready, pointing at the shared file, when
the partner's commitment is sealed already; else pending, for ``write_variants`` (a
worker that starts sends it for every pending variant)."""

from django.db import migrations
from django.utils import timezone


def backfill(apps, schema_editor):
    Artifact = apps.get_model("partners", "Artifact")
    ArtifactVariant = apps.get_model("partners", "ArtifactVariant")
    FingerprintKey = apps.get_model("partners", "FingerprintKey")
    Release = apps.get_model("partners", "Release")
    at = timezone.now()
    for key in FingerprintKey.objects.all().iterator():
        release = Release.objects.get(pk=key.release_id)
        held = (
            ArtifactVariant.objects.filter(
                partner_id=key.partner_id, artifact__checkpoint__release_id=key.release_id
            )
            .values_list("artifact__checkpoint_id", flat=True)
            .distinct()
        )
        missing = Artifact.objects.filter(checkpoint_id__in=list(held)).exclude(
            variants__partner_id=key.partner_id
        )
        rows = []
        for artifact in missing:
            row = ArtifactVariant(
                artifact_id=artifact.pk,
                partner_id=key.partner_id,
                alpha=release.fingerprint_alpha,
                patterns=list(release.fingerprint_patterns),
                created_at=at,
            )
            if key.sealed_at is not None:
                row.status = "ready"
                row.storage_key, row.size, row.sha256 = (
                    artifact.storage_key,
                    artifact.size,
                    artifact.sha256,
                )
                row.tensors, row.ready_at = [], at
            rows.append(row)
        ArtifactVariant.objects.bulk_create(rows, ignore_conflicts=True)


class Migration(migrations.Migration):
    dependencies = [("partners", "0015_fingerprints")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
