# The kind path: needs Docker, kind and kubectl. On a machine without Docker use `npm run dev`.
CLUSTER ?= mcp-job-controller
NS ?= mcp-job-controller
TAG ?= dev

.PHONY: test run kind-up images kind-load deploy sample watch logs metrics kind-down kind-all

test:                 ## the test suite, on the project's own test bed
	npm test

run:                  ## the controller against the test bed, with sample messages
	npm run dev

kind-up:              ## create the kind cluster
	kind create cluster --config kind-config.yaml --name $(CLUSTER)

images:               ## build both images
	docker build -f Dockerfile.controller -t mcp-job-controller/controller:$(TAG) .
	docker build -f Dockerfile.job -t mcp-job-controller/job:$(TAG) .

kind-load: images     ## load the images into the kind node
	kind load docker-image mcp-job-controller/controller:$(TAG) mcp-job-controller/job:$(TAG) --name $(CLUSTER)

deploy:               ## the base plus a one-node Kafka
	kubectl apply -k k8s/overlays/kind
	kubectl -n $(NS) rollout status deploy/kafka --timeout=180s
	kubectl -n $(NS) rollout status deploy/mcp-job-controller --timeout=180s

sample:               ## produce a sample message from inside the cluster
	kubectl -n $(NS) run produce-sample --rm -i --restart=Never --image=mcp-job-controller/controller:$(TAG) \
	  --overrides='{"spec":{"securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},"containers":[{"name":"produce-sample","image":"mcp-job-controller/controller:$(TAG)","args":["produce","--kafka-brokers","kafka:9092","--kafka-topic","mcp-jobs","--message","{\"jobID\":\"sample-1\",\"jobType\":\"server-init\",\"payload\":\"{\\\"mcpServers\\\":{\\\"everything\\\":{\\\"command\\\":\\\"npx\\\",\\\"args\\\":[\\\"-y\\\",\\\"@modelcontextprotocol/server-everything\\\"]}}}\"}"],"securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}}'

watch:                ## watch the Jobs appear and finish
	kubectl -n $(NS) get jobs -l app.kubernetes.io/managed-by=mcp-job-controller -w

logs:                 ## the newest Job's logs
	kubectl -n $(NS) logs job/$$(kubectl -n $(NS) get jobs -l app.kubernetes.io/managed-by=mcp-job-controller --sort-by=.metadata.creationTimestamp -o jsonpath='{.items[-1:].metadata.name}')

metrics:              ## the controller's metrics
	curl -s localhost:30080/metrics | grep ^mcp_job_controller_

kind-down:            ## delete the cluster
	kind delete cluster --name $(CLUSTER)

kind-all: kind-up kind-load deploy sample
