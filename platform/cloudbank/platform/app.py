"""The service platform's aiohttp app (mounted at /api/)."""

from __future__ import annotations

from aiohttp import web

from cloudbank.platform import (
    acd_api,
    authorisations,
    catalogue,
    connect_timeout,
    events_api,
    floor,
    id_cards,
    id_check,
    identity_api,
    matcher,
    openapi,
    phone_auth,
    pushes,
    ratings,
    service_definitions,
    session_history,
    sessions,
    sessions_api,
    talk,
    work_orders,
)
from cloudbank.platform.config import Config
from cloudbank.platform.phrase_check import VOCABULARY, SpeechVocabulary
from cloudbank.platform.service import service_app


def create_app(config: Config) -> web.Application:
    app = service_app(config, "platform")
    app.add_routes(identity_api.routes)
    app.add_routes(catalogue.routes)
    app.add_routes(events_api.routes)
    app.add_routes(phone_auth.routes)
    app.add_routes(sessions_api.routes)
    app.add_routes(talk.routes)
    app.add_routes(id_cards.routes)
    id_check.setup(app)  # routes, and the face matcher made on first use
    app.add_routes(pushes.routes)
    app.add_routes(session_history.routes)
    app.add_routes(authorisations.routes)
    app.add_routes(floor.routes)
    app.add_routes(openapi.routes)
    app.add_routes(acd_api.routes)
    app.add_routes(service_definitions.routes)
    app.add_routes(work_orders.routes)
    app.add_routes(ratings.routes)
    app.cleanup_ctx.append(matcher.acd_ctx)  # after service_app's resources: it needs Redis
    app.cleanup_ctx.append(sessions.node_watch_ctx)  # moves calls off video nodes that die
    app.cleanup_ctx.append(connect_timeout.connect_timeout_ctx)  # ends calls whose media never came up
    # config.otp_sender has one choice today ("file"); an SMS gateway would be picked here.
    app[phone_auth.OTP_SENDER] = phone_auth.default_sender(config.data)
    app[events_api.WS_CLIENTS] = {}
    app[acd_api.WALLBOARD_FEED] = acd_api.WallboardFeed()
    answer_hooks: list[pushes.AnswerHook] = [work_orders.ANSWER_HOOK]  # a work order's form fills it
    app[pushes.ANSWER_HOOKS] = answer_hooks
    decision_hooks: list[authorisations.DecisionHook] = [work_orders.on_decision]
    app[authorisations.DECISION_HOOKS] = decision_hooks
    app[VOCABULARY] = SpeechVocabulary(config)  # services' phrases are checked against it when saved
    return app
