"""A producer process for the kill -9 test: sends numbered records forever, printing each accepted number.

    python kafka_child.py SERVERS TOPIC BUFFER_PATH

A number is printed only after ``send()`` returned, i.e. after the record is in the durable buffer.
"""

from __future__ import annotations

import sys
import threading

from kafka_support import FAST_KAFKA, FAST_RECONNECT

from resilientmq import ReconnectAwareKafkaProducer


def main() -> None:
    servers, topic, path = sys.argv[1:4]
    producer = ReconnectAwareKafkaProducer(
        bootstrap_servers=servers, buffer_path=path, **FAST_KAFKA, **FAST_RECONNECT
    )
    pause = threading.Event()
    i = 0
    while True:
        producer.send(topic, b"%d" % i, key=b"k%d" % (i % 4))
        print(i, flush=True)
        i += 1
        pause.wait(0.002)  # pacing: records keep flowing while the parent breaks things


if __name__ == "__main__":
    main()
