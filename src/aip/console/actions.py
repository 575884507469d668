"""The console's state-changing requests: sign in and out, submit, cancel, resubmit, and the
as-you-type validation of the YAML editor.

Every POST but sign-in declares ``CheckedForm`` or ``CheckedJson``: same-origin and CSRF
checks run before the route body (403 otherwise). Sign-in checks the origin (a cross-site
page must not sign a browser in with someone else's token) and then the token itself.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from aip.console import queries
from aip.console.forms import QuickForm, example_yaml, form_errors
from aip.console.session import (
    check_same_origin,
    clear_cookie,
    new_session,
    read_session,
    set_cookie,
    token_matches,
)
from aip.console.web import (
    CheckedForm,
    CheckedJson,
    ConsoleRoute,
    CurrentSession,
    read_form,
    render,
)
from aip.control import jobs as job_service
from aip.errors import AIPError, InvalidSpec
from aip.server.deps import PlatformDep
from aip.server.routes import jobs as job_routes
from aip.spec import JobSpec, load_yaml, validate

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


@router.get("/login")
def login_page(request: Request, next_path: Annotated[str, Query(alias="next")] = "/"
               ) -> Response:
    if read_session(request, request.app.state.console_revoked) is not None:
        return RedirectResponse(_local(next_path), status_code=303)
    return render(request, "login.html", next_path=_local(next_path), error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    check_same_origin(request)
    form = await read_form(request)
    target = _local(form.get("next", "/"))
    if not token_matches(form.get("token", ""), request.app.state.token):
        return render(request, "login.html", status=401, next_path=target,
                      error="That is not this server's admin token. It is in "
                            "$AIP_HOME/token on the machine running `aip up`.")
    _session, value = new_session(request.app.state.token)
    response = RedirectResponse(target, status_code=303)
    set_cookie(response, request, value)
    return response


@router.post("/logout")
def logout(request: Request, session: CurrentSession, _: CheckedForm) -> Response:
    request.app.state.console_revoked.add(session)
    response = RedirectResponse("/login", status_code=303)
    clear_cookie(response, request)
    return response


@router.post("/submit")
def submit(request: Request, _: CurrentSession, form: CheckedForm,
           platform: PlatformDep) -> Response:
    """The quick form (``kind=quick``) or the YAML editor (``kind=yaml``)."""
    quick = QuickForm.from_form(form)
    yaml_text = form.get("yaml", "")
    try:
        if form.get("kind") == "yaml":
            spec = load_yaml(yaml_text, JobSpec, source="job spec")
        else:
            spec = validate(quick.to_spec(), JobSpec, source="job spec")
        job = job_routes.submit_spec(platform, spec)
    except AIPError as exc:  # InvalidSpec, NotFound (queue), Unschedulable: show on the form
        with platform.sessions() as store:
            queues = queries.queue_names(store)
        errors = form_errors(exc) if isinstance(exc, InvalidSpec) else {"form": exc.message}
        return render(request, "submit.html", status=exc.http_status, nav="submit",
                      form=quick, kind=form.get("kind", "quick"), errors=errors,
                      yaml_text=yaml_text or example_yaml(), yaml_error=exc.message
                      if form.get("kind") == "yaml" else None, queues=queues)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.post("/jobs/{job_id}/cancel")
def cancel(job_id: str, _: CurrentSession, __: CheckedForm, platform: PlatformDep) -> Response:
    job_routes.cancel_job(job_id, platform)
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


@router.post("/jobs/{job_id}/resubmit")
def resubmit(job_id: str, _: CurrentSession, __: CheckedForm,
             platform: PlatformDep) -> Response:
    """A new job from the same spec (a new id; the old job's history stays)."""
    with platform.sessions() as store:
        spec = JobSpec.model_validate_json(job_service.get(store, job_id).spec)
    job = job_routes.submit_spec(platform, spec)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.post("/console/validate", response_model=job_routes.SpecCheck)
def validate_yaml(_: CurrentSession, body: CheckedJson) -> job_routes.SpecCheck:
    """What the YAML editor shows as the person types: the server's own JobSpec judgement."""
    text = body.get("yaml")
    if not isinstance(text, str):
        raise InvalidSpec("send {\"yaml\": \"...\"}", fields={"yaml": "is required"})
    return job_routes.check_spec(text, yaml_body=True)


def _local(target: str) -> str:
    """Only same-site paths after sign-in: ``next=https://evil.example`` becomes ``/``."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target
