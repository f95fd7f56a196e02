"""``decide demo``: drive a running service with a simulated population, and watch it learn."""

from __future__ import annotations

import click

from decide.cli.command import Command
from decide.cli.options import from_settings
from decide.client import ApiError, Client


@click.command(cls=Command)
@click.option("--url", **from_settings("url"))
@click.option("--loop", default="demo", show_default=True)
@click.option("--rounds", default=4000, show_default=True, type=int)
@click.option("--report-every", default=500, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
def demo(url: str, loop: str, rounds: int, report_every: int, seed: int) -> None:
    """Drive a running service with a simulated population; watch the reward rate rise."""
    from simulations.environments import LinearPayoff

    client = Client(url)
    try:
        click.echo(_start(client, loop))
        environment = LinearPayoff(seed=seed)
        total, block, best, random = 0.0, [], [], []
        click.echo(f"{'rounds':>8} {'reward rate':>12} {'random choice':>14} {'best possible':>14} {'policy version':>15}")
        for number in range(1, rounds + 1):
            played = environment.next_round()
            answer = client.rank(played.context, played.actions, loop=loop)
            value = environment.reward(played, answer["rewardActionId"])
            client.reward(answer["eventId"], value, loop=loop)
            block.append(value)
            best.append(played.expected[played.best])
            random.append(sum(played.expected.values()) / len(played.expected))
            total += value
            if number % report_every == 0:
                rates = [sum(values) / len(values) for values in (block, random, best)]
                click.echo(f"{number:>8} {rates[0]:>12.3f} {rates[1]:>14.3f} {rates[2]:>14.3f} {answer['policyVersion']:>15}")
                block, best, random = [], [], []
    except OSError as error:
        raise click.ClickException(f"cannot reach decide at {url} ({error}); start it with `decide serve`, or point --url or DECIDE_URL at it") from error
    finally:
        client.close()
    click.echo(f"overall reward rate {total / rounds:.3f} over {rounds} rounds")


def _start(client: Client, loop: str) -> str:
    """Create ``loop``, or say how far the existing one has learned: a demo run again continues where it stopped."""
    try:
        client.request("POST", "/loops", {"name": loop, "config": {"rewardWaitTime": 1.0, "updateInterval": 0.5}})
        return f"created loop '{loop}': nothing learned yet"
    except ApiError as error:
        if error.status != 409:
            raise click.ClickException(f"could not create loop '{loop}': {error}") from error
    existing = client.request("GET", f"/loops/{loop}")
    return (
        f"continuing loop '{loop}' at version {existing['currentVersion']}, which has learned from "
        f"{existing['examplesLearned']} examples (start afresh with `decide loops reset {loop}` or another --loop)"
    )
