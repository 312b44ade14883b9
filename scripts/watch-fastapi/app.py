"""The seeds' service in small: FastAPI + asyncpg, one endpoint, in either of
the two ways the articles compare. POOL=0: a connection opened and closed
per request; POOL=N: a pool of N made in the lifespan handler (min = max = N).
DATABASE_URL is the DSN `poolbench watch` printed."""

import os
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI

DSN = os.environ["DATABASE_URL"]
POOL = int(os.environ.get("POOL", "0"))
QUERY = "SELECT $1::int AS id, md5($1::text) AS name"
state = {}


@asynccontextmanager
async def lifespan(app: FastAPI):
    if POOL:
        state["pool"] = await asyncpg.create_pool(DSN, min_size=POOL, max_size=POOL)
    yield
    if POOL:
        await state["pool"].close()


app = FastAPI(lifespan=lifespan)


@app.get("/users/{user_id}")
async def user(user_id: int):
    if POOL:
        async with state["pool"].acquire() as conn:
            row = await conn.fetchrow(QUERY, user_id)
    else:
        conn = await asyncpg.connect(DSN)
        try:
            row = await conn.fetchrow(QUERY, user_id)
        finally:
            await conn.close()
    return dict(row)
