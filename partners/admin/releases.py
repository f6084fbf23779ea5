from typing import Any

from django.contrib import admin
from django.db.models import Count, Model, QuerySet, Sum
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils import timezone

from accessctl.actors import acting_user
from accessctl.audit.admin import AuditHistory
from accessctl.audit.events import AuditAction
from accessctl.formats import size
from partners import actions, states
from partners.actions.checkpoints import (
    RELEASE_EDITABLE_FIELDS,
    check_patterns,
    check_patterns_mark_something,
)
from partners.errors import ActionError
from partners.models import Artifact, Checkpoint, EmbargoWindow, Release
from partners.models.releases import default_fingerprint_patterns
from partners.refusals import evidence_of

from . import pages
from ._helpers import (
    ActionErrorsAsMessages,
    KeepStoredTimes,
    action_error_to_validation,
    changed_values,
    reason_action,
)
from .buttons import ObjectButtons

__all__ = ["CheckpointAdmin", "EmbargoWindowAdmin", "ReleaseAdmin"]


class WindowForm(KeepStoredTimes):
    """Validated by the same rules as ``set_window``, so errors show on the form."""

    class Meta:
        model = EmbargoWindow
        fields = ["release", "partner", "tier", "opens_at", "closes_at", "embargo_lifts_at"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if field := self.fields.get("embargo_lifts_at"):  # absent on read-only views
            field.required = False
            field.help_text = "Empty: the release's public time (or the opening, if later)."

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        release = data.get("release") or getattr(self.instance, "release", None)
        # Inline in the release form, ``release`` is that form's (maybe new, maybe invalid)
        # release: without a public time its own errors are the ones to show.
        if (
            all(data.get(k) for k in ("partner", "opens_at", "closes_at"))
            and release
            and release.public_release_at
        ):
            try:
                data["embargo_lifts_at"] = actions.check_window(
                    release=release,
                    partner=data["partner"],
                    opens_at=data["opens_at"],
                    closes_at=data["closes_at"],
                    embargo_lifts_at=data.get("embargo_lifts_at"),
                    window=self.instance if self.instance.pk else None,
                )
            except ActionError as exc:
                raise action_error_to_validation(exc) from exc
        return data

    def _post_clean(self) -> None:
        # The rules above are the ones that count; model validation would repeat the
        # check constraints with less precise messages.
        pass


def _save_window(request: HttpRequest, form: ModelForm, release: Release) -> EmbargoWindow:
    data = form.cleaned_data
    return actions.set_window(
        actor=acting_user(request),
        release=release,
        partner=data["partner"],
        opens_at=data["opens_at"],
        closes_at=data["closes_at"],
        embargo_lifts_at=data["embargo_lifts_at"],
        tier=data.get("tier", ""),
        window=form.instance if form.instance.pk else None,
    )


class WindowInline(admin.TabularInline):
    """The release's windows, editable. The partner is a plain select whose choices are
    read once for every row (an autocomplete or a fresh queryset per row would cost a
    query per window: the page's count must not grow with its rows)."""

    model = EmbargoWindow
    form = WindowForm
    extra = 0
    fields = ["partner", "tier", "opens_at", "closes_at", "embargo_lifts_at"]
    can_delete = False
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[EmbargoWindow]:
        return super().get_queryset(request).select_related("release", "partner")

    def get_formset(self, request: HttpRequest, obj: Release | None = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        field: Any = formset.form.base_fields.get("partner")  # a fresh form class per call
        if field is not None:
            choices = list(field.choices)
            field.choices = choices
            inner = getattr(field.widget, "widget", None)  # the admin's related-field wrapper
            if inner is not None:
                inner.choices = choices
        return formset


class ReleaseForm(ModelForm):
    """The release's fields; the fingerprint patterns checked by the action's own rule
    (``check_patterns``), so the error shows on the field. The admin supplies the model
    and fields (``ModelAdmin.get_form``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("fingerprint_patterns", "fingerprint_alpha"):
            if field := self.fields.get(name):  # absent on read-only views
                field.required = False

    def clean_fingerprint_alpha(self) -> Any:
        alpha = self.cleaned_data.get("fingerprint_alpha")
        # Left empty: the release's (a new one's: the default, 1e-3).
        return self.instance.fingerprint_alpha if alpha is None else alpha

    def clean_fingerprint_patterns(self) -> Any:
        patterns = self.cleaned_data.get("fingerprint_patterns")
        if patterns in (None, "", []):  # left empty: the release's (a new one's: "*.weight")
            return self.instance.fingerprint_patterns or default_fingerprint_patterns()
        try:
            check_patterns(patterns)
        except ActionError as exc:
            # The refusal the action would record, written with the form's answer.
            saved = self.instance if self.instance.pk else None
            exc.evidence = evidence_of(
                AuditAction.RELEASE_REFUSED,
                "update_release" if saved else "create_release",
                exc,
                {"release": saved} if saved else {},
            )
            raise action_error_to_validation(exc) from exc
        return patterns

    def clean(self) -> dict[str, Any] | None:
        """Patterns that would mark no tensor of the release's safetensors files are an
        error on their field too (the action's rule, ``check_patterns_mark_something``),
        when fingerprinting is turned on or the patterns change."""
        data = super().clean()
        release, patterns = self.instance, self.cleaned_data.get("fingerprint_patterns")
        changed = {"fingerprint", "fingerprint_patterns"} & set(self.changed_data)
        if release.pk and self.cleaned_data.get("fingerprint") and patterns and changed:
            try:
                check_patterns_mark_something(
                    release, patterns, Artifact.objects.filter(checkpoint__release=release)
                )
            except ActionError as exc:
                exc.evidence = evidence_of(
                    AuditAction.RELEASE_REFUSED, "update_release", exc, {"release": release}
                )
                self.add_error("fingerprint_patterns", action_error_to_validation(exc))
        return data


@admin.register(Release)
class ReleaseAdmin(ObjectButtons, AuditHistory, ActionErrorsAsMessages, admin.ModelAdmin):
    story = staticmethod(pages.release_story)
    form = ReleaseForm
    list_display = ["slug", "name", "public_release_at", "status", "policy", "jurisdictions"]
    list_filter = ["status", "policy"]
    search_fields = ["slug", "name"]
    readonly_fields = ["created_at", "withdrawn_at", "withdrawn_reason"]
    # Its checkpoints, with their state, files and size: the read-only panel above the form.
    inlines = [WindowInline]
    actions = ["withdraw"]

    @reason_action(
        description="Kill switch: withdraw selected releases (stops every download now)",
        permission="withdraw",
        submit_label="Withdraw the release",
    )
    def withdraw(self, request: HttpRequest, release: Release, reason: str) -> None:
        actions.withdraw_release(actor=acting_user(request), release=release, reason=reason)

    def has_withdraw_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("partners.withdraw_release")

    @admin.display(description="Jurisdictions")
    def jurisdictions(self, obj: Release) -> str:
        return ", ".join(str(c) for c in obj.policy_jurisdictions) or "-"

    def get_readonly_fields(self, request: HttpRequest, obj: Release | None = None) -> list[str]:
        # A release's identity and export policy are fixed once windows depend on them.
        if obj:
            fixed = [*self.readonly_fields, "slug", "policy", "policy_jurisdictions"]
            if obj.status == Release.Status.WITHDRAWN:  # for good: nothing to choose
                fixed.append("status")
            return fixed
        return list(self.readonly_fields)

    def formfield_for_choice_field(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        # The form offers only the states it can set: withdrawal is the kill switch's
        # (its button, with a reason and a fan-out), never a status chosen here.
        if db_field.name == "status":
            kwargs["choices"] = [
                c for c in Release.Status.choices if c[0] != Release.Status.WITHDRAWN
            ]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Release, form: ModelForm, change: bool) -> None:
        if change:
            # Only what the person changed: the page shows times to the second, so an
            # untouched public time stored with microseconds would come back "earlier"
            # and be refused (the public time never moves earlier).
            values = changed_values(form, RELEASE_EDITABLE_FIELDS)
            actions.update_release(actor=acting_user(request), release=obj, **values)
            obj.refresh_from_db()
            return
        data = form.cleaned_data
        created = actions.create_release(
            actor=acting_user(request),
            slug=data["slug"],
            name=data["name"],
            public_release_at=data["public_release_at"],
            policy=data["policy"],
            policy_jurisdictions=[str(c) for c in data["policy_jurisdictions"]],
            quota_factor=data["quota_factor"],
            fingerprint=data.get("fingerprint", False),
            fingerprint_patterns=data.get("fingerprint_patterns") or None,
            fingerprint_alpha=data.get("fingerprint_alpha"),
        )
        obj.pk = created.pk
        obj.refresh_from_db()

    def save_formset(
        self, request: HttpRequest, form: ModelForm, formset: Any, change: bool
    ) -> None:
        if formset.model is not EmbargoWindow:
            return super().save_formset(request, form, formset, change)
        # Windows are written by ``set_window``, not ``formset.save()``; the admin's change
        # message reads what a formset saved from these three lists, so fill them.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for window_form in formset.forms:
            if not (window_form.has_changed() and window_form.cleaned_data):
                continue
            existed = bool(window_form.instance.pk)
            window = _save_window(request, window_form, form.instance)
            if existed:
                formset.changed_objects.append((window, window_form.changed_data))
            else:
                formset.new_objects.append(window)
        return None


class WindowStateFilter(admin.SimpleListFilter):
    """By ``partners.states.window_state``: a withdrawn release's windows are ``withdrawn``,
    never ``open`` or ``upcoming``."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return list(EmbargoWindow.State.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() is None:
            return queryset
        return states.windows_in_state(queryset, str(self.value()), timezone.now())


class CheckpointStateFilter(admin.SimpleListFilter):
    """By ``partners.states.checkpoint_state``: a withdrawn release's checkpoints are
    ``pulled``."""

    title = "status"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return list(Checkpoint.Status.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() is None:
            return queryset
        return states.checkpoints_in_state(queryset, str(self.value()))


@admin.display(description="State")
def window_state(window: EmbargoWindow) -> str:
    state = states.window_state(window, timezone.now())
    held = states.access_held(state, window.partner.status)
    return f"{state.label} · {held}" if held else str(state.label)


@admin.display(description="Status")
def checkpoint_state(checkpoint: Checkpoint) -> str:
    return str(states.checkpoint_state(checkpoint).label)


@admin.register(EmbargoWindow)
class EmbargoWindowAdmin(AuditHistory, ActionErrorsAsMessages, admin.ModelAdmin):
    form = WindowForm
    list_display = [
        "release",
        "partner",
        "tier",
        "opens_at",
        "closes_at",
        "embargo_lifts_at",
        window_state,
    ]
    list_filter = [WindowStateFilter, "release", "partner", "tier"]
    search_fields = ["release__slug", "partner__slug", "tier"]
    autocomplete_fields = ["partner", "release"]
    list_select_related = ["release", "partner"]

    def get_readonly_fields(
        self, request: HttpRequest, obj: EmbargoWindow | None = None
    ) -> list[str]:
        return ["release", "partner"] if obj else []

    def save_model(
        self, request: HttpRequest, obj: EmbargoWindow, form: ModelForm, change: bool
    ) -> None:
        release = obj.release if change else form.cleaned_data["release"]
        if change:
            form.cleaned_data["partner"] = obj.partner
        saved = _save_window(request, form, release)
        # The form never wrote to ``obj`` (the action did): the page's message and
        # history name the saved row.
        obj.pk = saved.pk
        obj.refresh_from_db()


class ArtifactInline(admin.TabularInline):
    model = Artifact
    extra = 0
    readonly_fields = fields = (
        "path",
        "size",
        "sha256",
        "storage_key",
    )
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(Checkpoint)
class CheckpointAdmin(ObjectButtons, AuditHistory, admin.ModelAdmin):
    list_display = [
        "__str__",
        "training_step",
        checkpoint_state,
        "files",
        "total_size",
        "registered_at",
    ]
    list_filter = [CheckpointStateFilter, "release"]
    search_fields = ["tag", "release__slug"]
    readonly_fields = fields = (
        "release",
        "tag",
        "training_step",
        "state",
        "pulled_at",
        "pulled_reason",
        "registered_at",
    )
    inlines = [ArtifactInline]
    actions = ["pull"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Checkpoint]:
        return (
            super()
            .get_queryset(request)
            .select_related("release")
            .annotate(file_count=Count("artifacts"), byte_count=Sum("artifacts__size"))
        )

    @admin.display(description="Status")
    def state(self, checkpoint: Checkpoint) -> str:
        return checkpoint_state(checkpoint)

    @admin.display(description="Files", ordering="file_count")
    def files(self, obj: Any) -> int:  # a checkpoint annotated by get_queryset
        return obj.file_count

    @admin.display(description="Size", ordering="byte_count")
    def total_size(self, obj: Any) -> str:
        return size(obj.byte_count or 0)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # registered with `manage.py register_checkpoint` or the staff API

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        # Nothing on this page is editable: a checkpoint changes only through actions
        # (pull), so the page only reads (no Save button; a posted form is refused).
        return False

    def has_pull_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("partners.pull_checkpoint")

    @reason_action(
        description="Pull selected checkpoints (revokes their grants)",
        permission="pull",
        submit_label="Pull",
    )
    def pull(self, request: HttpRequest, checkpoint: Checkpoint, reason: str) -> None:
        actions.pull_checkpoint(actor=acting_user(request), checkpoint=checkpoint, reason=reason)
