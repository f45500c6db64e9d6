"""The web app: /healthz and Django's admin for staff users."""

import pytest
from django.contrib.auth import get_user_model


@pytest.mark.django_db
def test_healthz_reports_database_and_data_dir(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] and body["database"]["ok"] and body["data_dir"]["ok"]


@pytest.mark.django_db
def test_healthz_fails_when_the_data_dir_is_gone(client, settings, tmp_path):
    settings.BUZON_DATA_DIR = tmp_path / "missing"
    response = client.get("/healthz")
    assert response.status_code == 503 and not response.json()["data_dir"]["ok"]


@pytest.mark.django_db
def test_admin_lists_accounts_for_staff_only(client, alice):
    assert client.get("/admin/mailhost/account/").status_code == 302  # to the login page
    get_user_model().objects.create_superuser("root", "root@example.test", "pw")
    client.login(username="root", password="pw")
    page = client.get("/admin/mailhost/account/")
    assert page.status_code == 200 and b"alice@example.test" in page.content


def test_front_page_leads_to_the_admin(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/admin/"
