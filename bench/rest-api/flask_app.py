"""The SCONE sample's REST API as the sample runs it: Flask's own threaded server with TLS.

Used only by bench/rest-api.sh as the baseline for rest-api-sample.
"""
import os
import sys
import time

from flask import Flask, jsonify

app = Flask(__name__)


@app.route("/secret", methods=["GET"])
def get_secret():
    secret = os.environ.get("AKV_SECRET")
    if secret is None:
        return jsonify({"error": "secret not found"}), 404
    return jsonify({"secret": secret, "access_timestamp": time.time()})


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 4996
    cert = os.environ.get("REST_API_CERT", "/tls/flask.crt")
    key = os.environ.get("REST_API_KEY", "/tls/flask.key")
    app.run(host="127.0.0.1", port=port, ssl_context=(cert, key), threaded=True)
