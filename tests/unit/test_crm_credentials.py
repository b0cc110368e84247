"""GHL tokens encrypted at rest: CredentialCipher (Fernet/MultiFernet), rotation, clear errors."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from jorge_runtime.credential_cipher import CredentialCipher, CredentialsUnreadable, generate_key
from jorge_runtime.settings import ConfigError, Settings

TOKEN = SecretStr("pit-0123456789-secret-token")


def cipher(*keys: str) -> CredentialCipher:
    return CredentialCipher(SecretStr(",".join(keys)))


def test_a_token_round_trips_and_the_ciphertext_does_not_hold_it() -> None:
    box = cipher(generate_key())
    sealed = box.encrypt("acme", TOKEN)
    assert TOKEN.get_secret_value().encode() not in sealed
    assert box.decrypt("acme", sealed).get_secret_value() == TOKEN.get_secret_value()
    assert box.encrypt("acme", TOKEN) != sealed  # a fresh IV every time


def test_rotation_new_key_first_reads_old_tokens_and_rotate_moves_them_to_the_new_key() -> None:
    old, new = generate_key(), generate_key()
    sealed_with_old = cipher(old).encrypt("acme", TOKEN)
    both = cipher(new, old)
    assert both.decrypt("acme", sealed_with_old) == TOKEN
    rotated = both.rotate("acme", sealed_with_old)
    assert cipher(new).decrypt("acme", rotated) == TOKEN  # the old key can now be dropped
    with pytest.raises(CredentialsUnreadable):
        cipher(old).decrypt("acme", rotated)
    assert cipher(new).decrypt("acme", both.encrypt("acme", TOKEN)) == TOKEN  # the first key encrypts


def test_a_wrong_key_is_a_clear_error_without_the_token() -> None:
    sealed = cipher(generate_key()).encrypt("acme", TOKEN)
    with pytest.raises(CredentialsUnreadable) as caught:
        cipher(generate_key(), generate_key()).decrypt("acme", sealed)
    message = str(caught.value)
    assert "none of the 2 key(s) in CRM_CREDENTIALS_KEY" in message
    assert TOKEN.get_secret_value() not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_token_copied_to_another_organisation_is_refused() -> None:
    box = cipher(generate_key())
    with pytest.raises(CredentialsUnreadable, match="another organisation"):
        box.decrypt("globex", box.encrypt("acme", TOKEN))


def test_a_malformed_key_says_which_one_never_its_value() -> None:
    good = generate_key()
    with pytest.raises(ConfigError, match="key 2 of 2 is not a Fernet key") as caught:
        cipher(good, "not-a-key-at-all")
    assert "not-a-key-at-all" not in str(caught.value) and good not in str(caught.value)
    with pytest.raises(ConfigError, match="empty"):
        cipher(" , ")
    assert CredentialCipher.from_setting(None) is None


def test_the_setting_is_secret() -> None:
    key = generate_key()
    settings = Settings(crm_credentials_key=SecretStr(key))
    assert settings.crm_credentials_key is not None
    assert key not in repr(settings) and key not in str(settings.model_dump())
