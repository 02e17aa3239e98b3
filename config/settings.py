"""The one settings module. Every knob is an environment variable (see README).

Defaults run the demo: SQLite in ./var, the filesystem Celery broker (no server),
DEBUG on. Production sets DEBUG=0, SECRET_KEY, DATABASE_URL and CELERY_BROKER_URL.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.templatetags.static import static

from config.env import ConfigError, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
(VAR_DIR / "static").mkdir(parents=True, exist_ok=True)  # SQLite file, broker, static

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ConfigError("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-demo-key-only-for-local-development"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "unfold",  # before django.contrib.admin so its templates win
    "unfold.contrib.filters",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served from our static files, no CDN
    "django_celery_beat",
    "onboarding",
    "analytics",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------
DEFAULT_DATABASE_URL = f"sqlite:///{VAR_DIR / 'onboarding.sqlite3'}"
DATABASE_URL = env_str("DATABASE_URL", DEFAULT_DATABASE_URL)
_db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # Without these, concurrent web + worker writers fail with "database is locked".
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000; PRAGMA synchronous=NORMAL"
        ),
    }
    _db["CONN_MAX_AGE"] = 0
elif _db["ENGINE"] == "django.db.backends.postgresql":
    # A row lock held too long becomes a domain Conflict (409), not a hung request.
    lock_timeout_ms = env_int("DB_LOCK_TIMEOUT_MS", 5000)
    _db.setdefault("OPTIONS", {})["options"] = f"-c lock_timeout={lock_timeout_ms}"
    # Server-side binding lets psycopg prepare the statements every transition repeats
    # (lock, update, event insert) instead of re-planning them: about 0.8 ms saved per
    # transition. Turn off behind a transaction-mode pgbouncer older than 1.21.
    if env_bool("DB_PREPARED_STATEMENTS", True):
        _db["OPTIONS"]["server_side_binding"] = True
        _db["OPTIONS"]["prepare_threshold"] = env_int("DB_PREPARE_THRESHOLD", 5)
    _db["CONN_HEALTH_CHECKS"] = True
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The default cache holds the API throttle counters: with several web processes, point
# CACHE_URL at Redis so they share them. Unset: per-process memory (development).
CACHE_URL = env_str("CACHE_URL", "")
if CACHE_URL and not CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ConfigError(f"CACHE_URL must be a redis:// URL, got {CACHE_URL!r}")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
        if CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

LOGIN_URL = "admin:login"

# --- Celery -----------------------------------------------------------------
# The default broker is kombu's filesystem transport: no server to install.
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)
    }
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# --- Onboarding -------------------------------------------------------------
SWEEP_INTERVAL_SECONDS = env_int("SWEEP_INTERVAL_SECONDS", 30)
SWEEP_BATCH_SIZE = env_int("SWEEP_BATCH_SIZE", 200)
SWEEP_TIME_BUDGET_SECONDS = env_int("SWEEP_TIME_BUDGET_SECONDS", 20)
# A due step no worker has leased this long after its doorbell is dispatched again.
AUTOMATION_REDISPATCH_SECONDS = env_int("AUTOMATION_REDISPATCH_SECONDS", 60)
CELERY_BEAT_SCHEDULE = {
    "sweep": {"task": "onboarding.sweep", "schedule": float(SWEEP_INTERVAL_SECONDS)},
    "webhooks-relay": {
        "task": "api.webhooks_relay",
        "schedule": float(env_int("WEBHOOK_RELAY_INTERVAL_SECONDS", 2)),
        # A run still queued when the next is due is dropped: the next one does it all.
        "options": {"expires": float(env_int("WEBHOOK_RELAY_INTERVAL_SECONDS", 2))},
    },
    "alerts": {
        "task": "analytics.evaluate_alerts",
        "schedule": float(env_int("ALERT_EVALUATION_INTERVAL_SECONDS", 300)),
        "options": {"expires": float(env_int("ALERT_EVALUATION_INTERVAL_SECONDS", 300))},
    },
    "events-retention": {
        "task": "analytics.purge_events",
        "schedule": float(env_int("EVENT_RETENTION_PURGE_INTERVAL_SECONDS", 3600)),
        "options": {"expires": float(env_int("EVENT_RETENTION_PURGE_INTERVAL_SECONDS", 3600))},
    },
}
# Raw analytics events older than this many days are purged (reports read the facts,
# not the events); 0 keeps them for ever.
EVENT_RETENTION_DAYS = env_int("EVENT_RETENTION_DAYS", 0)
# Modules whose @automated_step handlers are registered at start-up.
AUTOMATION_HANDLER_MODULES = env_list("AUTOMATION_HANDLER_MODULES", ["onboarding.handlers"])
# Demo automation handlers (onboarding/handlers.py): latency and failure rate.
DEMO_AUTOMATION_LATENCY_MS = env_int("DEMO_AUTOMATION_LATENCY_MS", 400)
DEMO_AUTOMATION_FAILURE_PERCENT = env_int("DEMO_AUTOMATION_FAILURE_PERCENT", 15)
CRM_WEBHOOK_URL = env_str("CRM_WEBHOOK_URL", "")
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "onboarding@example.com")

# --- REST API (api/) ----------------------------------------------------------
REST_FRAMEWORK = {
    # A bearer token first: its `authenticate_header` makes a missing login a 401.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["api.auth.ScopedAccess"],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.PerClientRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "api.schema.ProblemAutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_METADATA_CLASS": None,  # OPTIONS is 405 like any undocumented method
    "EXCEPTION_HANDLER": "api.problems.problem_exception_handler",
}
# Requests per token (or per signed-in user) per second/minute/hour/day, e.g. "1200/min".
# Counted in the default cache: per process unless CACHE_URL points at Redis.
API_TOKEN_THROTTLE_RATE = env_str("API_TOKEN_THROTTLE_RATE", "1200/min")
API_SESSION_THROTTLE_RATE = env_str("API_SESSION_THROTTLE_RATE", "600/min")
# Require an Idempotency-Key header on POST /api/v1/cases/ (optional when off).
API_IDEMPOTENCY_KEY_REQUIRED = env_bool("API_IDEMPOTENCY_KEY_REQUIRED", False)
# Idempotency keys are forgotten after this many hours (the retention task); 0: kept.
IDEMPOTENCY_KEY_TTL_HOURS = env_int("IDEMPOTENCY_KEY_TTL_HOURS", 24)
# Webhooks (api/webhooks.py). The relay cuts deliveries from the event stream this
# often; a delivery is retried after ~BASE·2^(n-1) seconds (with jitter, at most MAX)
# up to MAX_ATTEMPTS times; a webhook is disabled after this many failures in a row.
WEBHOOK_RELAY_INTERVAL_SECONDS = env_int("WEBHOOK_RELAY_INTERVAL_SECONDS", 2)
WEBHOOK_RELAY_BATCH_SIZE = env_int("WEBHOOK_RELAY_BATCH_SIZE", 500)
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 5)
# Loopback and private-network receivers (development, on-premises); off: public only.
WEBHOOK_ALLOW_PRIVATE_TARGETS = env_bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", False)
WEBHOOK_RETRY_BASE_SECONDS = env_int("WEBHOOK_RETRY_BASE_SECONDS", 30)
WEBHOOK_RETRY_MAX_SECONDS = env_int("WEBHOOK_RETRY_MAX_SECONDS", 3600)
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 15)
WEBHOOK_DISABLE_AFTER_FAILURES = env_int("WEBHOOK_DISABLE_AFTER_FAILURES", 10)
# A due delivery whose queued send has not started this long after is queued again.
WEBHOOK_REDISPATCH_SECONDS = env_int("WEBHOOK_REDISPATCH_SECONDS", 60)
SPECTACULAR_SETTINGS = {
    "TITLE": "Onboarding cases API",
    "DESCRIPTION": (
        "Drive onboarding from your CRM, product and data warehouse. Authenticate with "
        "`Authorization: Bearer <token>` (create a token with the scopes you need in the "
        "admin under API tokens; it is shown once). Errors are RFC 9457 problem details "
        "(`application/problem+json`)."
    ),
    "VERSION": "1",
    "SCHEMA_PATH_PREFIX": "/api/v[0-9]+",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": True, "displayOperationId": False},
    "ENUM_NAME_OVERRIDES": {
        "CaseStateEnum": "onboarding.models.cases.CaseState",
        "TaskStateEnum": "onboarding.models.cases.TaskState",
    },
}

UNFOLD = {
    "SITE_TITLE": "Onboarding",
    "SITE_HEADER": "Onboarding cases",
    "SITE_SYMBOL": "rocket_launch",
    "SHOW_HISTORY": True,
    # The index is the agent's desk (templates/admin/index.html): their tasks and queues.
    "DASHBOARD_CALLBACK": "onboarding.workspace.views.dashboard_callback",
    "STYLES": [lambda request: static("workspace/workspace.css")],
    "SCRIPTS": [lambda request: static("workspace/workspace.js")],
    "SIDEBAR": {
        "show_search": True,
        "show_all_applications": False,
        "navigation": "onboarding.workspace.nav.navigation",
    },
}

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
