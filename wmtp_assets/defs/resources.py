"""The one Dagster resource: the public environment contract as launchpad-editable config."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from wmtp_assets.defs.worker import die_with_parent
from wmtp_assets.files.layout import Layout
from wmtp_assets.models.cpu_threads import share_cores_with_io
from wmtp_assets.settings import Settings
from wmtp_assets.sources import Source, source_from_settings


class WmtpResource(dg.ConfigurableResource):
    """``WMTP_*`` settings; defaults are read from the environment when definitions load."""

    storage_root: str = Field(description="WMTP_STORAGE_ROOT: root of the storage layout")
    mirror: str | None = Field(default=None, description="WMTP_MIRROR: read upstream files here")
    tokenizer_sha256: str = Field(description="WMTP_TOKENIZER_SHA256 every tokenizer must have")
    max_tokens: int = Field(description="WMTP_MAX_TOKENS for dataset records")
    device: str = Field(description="WMTP_DEVICE: auto, cuda, mps or cpu")
    lock_timeout_s: float = Field(
        default=600.0,
        description="WMTP_LOCK_TIMEOUT: seconds to wait for a held artifact or download slot",
    )
    signing_key: str | None = Field(
        default=None, description="WMTP_SIGNING_KEY: PEM EC P-256 private key outside the root"
    )
    verify_key: str | None = Field(default=None, description="WMTP_VERIFY_KEY: PEM public key")
    signed_state: str | None = Field(
        default=None, description="WMTP_SIGNED_STATE: the signed-state record (default: by the key)"
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if die_with_parent():  # a step worker process: torch's threads are ours to set
            share_cores_with_io()

    @classmethod
    def from_settings(cls, settings: Settings) -> "WmtpResource":
        return cls(
            storage_root=str(settings.storage_root),
            mirror=str(settings.mirror) if settings.mirror else None,
            tokenizer_sha256=settings.tokenizer_sha256,
            max_tokens=settings.max_tokens,
            device=settings.device,
            lock_timeout_s=settings.lock_timeout_s,
            signing_key=_text(settings.signing_key),
            verify_key=_text(settings.verify_key),
            signed_state=_text(settings.signed_state),
        )

    @property
    def settings(self) -> Settings:
        return Settings(
            storage_root=Path(self.storage_root),
            mirror=Path(self.mirror) if self.mirror else None,
            tokenizer_sha256=self.tokenizer_sha256,
            max_tokens=self.max_tokens,
            device=self.device,  # type: ignore[arg-type]
            lock_timeout_s=self.lock_timeout_s,
            signing_key=_path(self.signing_key),
            verify_key=_path(self.verify_key),
            signed_state=_path(self.signed_state),
        )

    @property
    def layout(self) -> Layout:
        return Layout(Path(self.storage_root))

    def source(self) -> Source:
        return source_from_settings(self.settings)


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _path(text: str | None) -> Path | None:
    return None if not text else Path(text)
