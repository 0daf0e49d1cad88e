"""A real MCP client (the `mcp` package from PyPI) driving `alp mcp serve`.

    client.py ALP HOME PROFILE PEER FILE

Lists alp's tools, then calls peers_list, blob_put (FILE to PEER),
ask_peer (PEER) and a blob_put whose peer name tries to pass for a flag.
Prints one JSON object with what came back, for the Rust test to check.
"""

import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def text(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


async def main(alp, home, profile, peer, path):
    server = StdioServerParameters(command=alp, args=["--home", home, "-p", profile, "mcp", "serve"])
    out = {}
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = (await session.list_tools()).tools
            out["tools"] = sorted(t.name for t in tools)
            out["annotations"] = {
                t.name: {"readOnly": t.annotations.read_only_hint, "openWorld": t.annotations.open_world_hint}
                for t in tools
                if t.annotations
            }
            peers = await session.call_tool("peers_list", {})
            out["peers"] = json.loads(text(peers))
            put = await session.call_tool("blob_put", {"peer": peer, "what": path})
            out["put"] = {"error": put.is_error, "result": json.loads(text(put)) if not put.is_error else text(put)}
            ask = await session.call_tool("ask_peer", {"peer": peer, "prompt": "Say hello"})
            out["ask"] = {"error": ask.is_error, "result": json.loads(text(ask)) if not ask.is_error else text(ask)}
            sneaky = await session.call_tool("blob_put", {"peer": "--help", "what": path})
            out["sneaky"] = {"error": sneaky.is_error, "text": text(sneaky)}
            unknown = await session.call_tool("blob_put", {"peer": "nobody", "what": path})
            out["unknown"] = {"error": unknown.is_error, "text": text(unknown)}
    print(json.dumps(out))


asyncio.run(main(*sys.argv[1:6]))
