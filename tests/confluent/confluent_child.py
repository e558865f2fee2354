"""A producer process for the kill -9 test: produces numbered messages for ever, printing each accepted one.

    python confluent_child.py SERVERS TOPIC BUFFER_PATH

A number is printed only after ``produce()`` returned, i.e. after the message is in the durable outbox.
"""

from __future__ import annotations

import sys
import threading

from confluent_support import FAST_CONFLUENT, FAST_RECONNECT

from resilientmq.confluent import ReconnectAwareConfluentProducer


def main() -> None:
    servers, topic, path = sys.argv[1:4]
    producer = ReconnectAwareConfluentProducer(
        {"bootstrap.servers": servers, **FAST_CONFLUENT}, buffer_path=path, **FAST_RECONNECT
    )
    pause = threading.Event()
    i = 0
    while True:
        producer.produce(topic, b"%d" % i, key=b"k%d" % (i % 4))
        producer.poll(0)
        print(i, flush=True)
        i += 1
        pause.wait(0.002)  # pacing: messages keep flowing while the parent breaks things


if __name__ == "__main__":
    main()
