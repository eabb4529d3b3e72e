"""`lectern sync FOLDER --api URL`: the same plan (`domain.sync.plan_sync`) carried out through a deployment's REST
API instead of a local data dir — the automated path for CI (`.github/workflows/docs-sync.yml`).

The documents the API lists (their `source_path` and `sha256`) are the stored side of the plan; the folder's
files become source paths under `--prefix` (default: the folder's name), so one tenant can hold several synced
folders. Uploads use the API's upload slots (an S3 presigned POST on AWS, the local stand-in otherwise) with
`on_duplicate=replace`: the new version replaces the old one once it is indexed, a failing one leaves the old one
searchable. Every step is one API call that is safe to repeat, so a killed run is resumed by running it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from lectern.domain.models import Document, DocumentStatus
from lectern.domain.sync import Action, SyncItem, SyncOutcome

TERMINAL = ("INDEXED", "FAILED")


class ApiError(RuntimeError):
    """The API refused a call: `code` and `message` are the API's `{"error": {...}}` (or the HTTP status)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def _raise_for(r: httpx.Response) -> None:
    if r.is_success:
        return
    try:
        err = r.json()["error"]
        code, message = str(err.get("code", "")), str(err.get("message", ""))
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", r.text[:300]
    raise ApiError(r.status_code, code, message)


@dataclass
class ApiClient:
    """`api_key`: a Lectern API key (local server: `Authorization: Bearer <key>`); `id_token`: a Cognito ID token
    (AWS deployment: API Gateway's Cognito authorizer reads the raw token from `Authorization`, as the page
    sends it)."""

    base_url: str
    api_key: str | None = None
    timeout_s: float = 60.0
    client: httpx.Client | None = None
    id_token: str | None = None

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        if self.id_token:
            headers = {"Authorization": self.id_token}
        self._http = self.client or httpx.Client(headers=headers, timeout=self.timeout_s)
        self._uploads = httpx.Client(timeout=self.timeout_s)  # slots carry their own authorisation (S3-style)

    def close(self) -> None:
        self._uploads.close()
        if self.client is None:
            self._http.close()

    def documents(self) -> list[Document]:
        r = self._http.get(f"{self.base_url}/v1/documents")
        _raise_for(r)
        return [_to_document(d) for d in r.json()["documents"]]

    def get(self, document_id: str) -> dict[str, Any]:
        r = self._http.get(f"{self.base_url}/v1/documents/{document_id}")
        _raise_for(r)
        return r.json()

    def delete(self, document_id: str) -> None:
        r = self._http.delete(f"{self.base_url}/v1/documents/{document_id}")
        if r.status_code != 404:  # already gone: the goal is reached
            _raise_for(r)

    def upload(self, filename: str, data: bytes, *, source_path: str, sha256: str) -> str:
        r = self._http.post(
            f"{self.base_url}/v1/documents",
            json={
                "filename": filename,
                "size_bytes": len(data),
                "source_path": source_path,
                "sha256": sha256,
                "on_duplicate": "replace",
            },
        )
        _raise_for(r)
        slot = r.json()
        up = self._uploads.post(
            slot["upload"]["url"], data=slot["upload"]["fields"], files={"file": (filename, data)}
        )
        _raise_for(up)
        return str(slot["document_id"])


def _to_document(d: dict[str, Any]) -> Document:
    return Document(
        tenant_id="remote",
        document_id=d["document_id"],
        filename=d["filename"],
        content_type=d.get("content_type", ""),
        size_bytes=int(d.get("size_bytes") or 0),
        status=DocumentStatus(d["status"]),
        created_at=d.get("created_at", ""),
        updated_at=d.get("updated_at", ""),
        error=d.get("error"),
        pages=d.get("pages"),
        chunks=d.get("chunks"),
        sha256=d.get("sha256"),
        source_path=d.get("source_path"),
        timings=d.get("timings"),
    )


def _finished(doc: dict[str, Any]) -> tuple[str, str]:
    if doc["status"] == "FAILED":
        return "FAILED", doc.get("error") or ""
    return "INDEXED", f"{doc.get('pages')} page(s), {doc.get('chunks')} chunk(s)"


class ApiSyncRunner:
    """Carries out a plan through the API. `read(source_path)` returns the file's bytes; `filename_of` the name
    shown for it."""

    def __init__(
        self,
        api: ApiClient,
        read: Callable[[str], bytes],
        *,
        wait_s: float = 1800.0,
        poll_s: float = 0.5,
    ) -> None:
        self.api = api
        self.read = read
        self.wait_s = wait_s
        self.poll_s = poll_s

    def start(self, item: SyncItem) -> SyncOutcome | str:
        """Do the item's API calls. Returns its outcome, or the id of a document to wait for."""
        try:
            if item.action is Action.GONE:
                return SyncOutcome(item, "KEPT", "the file is gone; kept (sync with --delete removes it)")
            if item.action is Action.FAILED:
                return SyncOutcome(item, "FAILED", item.reason)
            for doc_id in item.remove:
                self.api.delete(doc_id)
            if item.action is Action.DELETE:
                return SyncOutcome(item, "DELETED")
            if item.action is Action.UNCHANGED:
                return SyncOutcome(item, "INDEXED", "unchanged")
            if item.action is Action.RESUME and item.document_id:
                return item.document_id  # the deployment is still processing it
            data = self.read(item.path)
            name = item.path.rsplit("/", 1)[-1]
            return self.api.upload(name, data, source_path=item.path, sha256=item.sha256 or "")
        except ApiError as exc:
            return SyncOutcome(item, "FAILED", exc.message or exc.code)
        except (httpx.HTTPError, OSError) as exc:
            return SyncOutcome(item, "FAILED", f"The API could not be reached: {exc}")

    def wait(self, pending: dict[str, SyncItem], on_done: Callable[[SyncOutcome], None]) -> None:
        """Poll the pending documents until each is INDEXED or FAILED (or the wait ends)."""
        deadline = time.monotonic() + self.wait_s
        while pending and time.monotonic() < deadline:
            for doc_id in list(pending):
                try:
                    doc = self.api.get(doc_id)
                except ApiError as exc:
                    if exc.status == 404:
                        on_done(
                            SyncOutcome(pending.pop(doc_id), "FAILED", "The document was deleted meanwhile.")
                        )
                    continue
                except httpx.HTTPError:
                    continue
                if doc["status"] in TERMINAL:
                    on_done(SyncOutcome(pending.pop(doc_id), *_finished(doc)))
            if pending:
                time.sleep(self.poll_s)
        for doc_id, item in pending.items():
            on_done(
                SyncOutcome(
                    item,
                    "FAILED",
                    f"Still processing after {self.wait_s:g} s (document {doc_id}); sync again to check on it.",
                )
            )
