# The official collector image is built FROM scratch: no shell, no wget, so Docker has nothing to
# run a health check with (open-telemetry/opentelemetry-collector-releases#866). This is the same
# static binary on Alpine, whose busybox wget probes the health_check extension. Kubernetes probes
# over HTTP from the kubelet, so deploy/k8s/ uses the official image directly.
ARG OTELCOL_VERSION=0.131.0
FROM otel/opentelemetry-collector-contrib:${OTELCOL_VERSION} AS otelcol

FROM alpine:3.22
COPY --from=otelcol /otelcol-contrib /otelcol-contrib
USER 10001:10001
EXPOSE 4317 4318 8889 13133
ENTRYPOINT ["/otelcol-contrib"]
CMD ["--config=/etc/otelcol-contrib/config.yaml"]
