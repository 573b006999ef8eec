"""Settings shown in logs never carry a database or Redis password; history's URL defaults."""

from avtomatika.config import DEFAULT_HISTORY_URI, Config


def test_as_dict_hides_passwords_in_urls():
    config = Config(
        {
            "HISTORY_DATABASE_URI": "postgresql+psycopg://avto:s3cret@db:5432/history",
            "REDIS_URL": "redis://:hunter2@redis:6379/0",
        }
    )
    shown = config.as_dict()
    assert shown["HISTORY_DATABASE_URI"] == "postgresql+psycopg://avto:***@db:5432/history"
    assert shown["REDIS_URL"] == "redis://:***@redis:6379/0"
    assert "s3cret" not in str(shown) and "hunter2" not in str(shown)


def test_history_is_on_with_a_uri_or_when_enabled_and_off_by_default():
    assert Config({}).history_url == ""
    assert Config({"HISTORY_ENABLED": "true"}).history_url == DEFAULT_HISTORY_URI
    assert Config({"HISTORY_DATABASE_URI": "sqlite:///x.db"}).history_url == "sqlite:///x.db"
    assert Config({"HISTORY_DATABASE_URI": "sqlite:///x.db", "HISTORY_ENABLED": "false"}).history_url == ""
