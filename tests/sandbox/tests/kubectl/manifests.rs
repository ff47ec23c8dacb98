//! The ERP reporting service these tests deploy: a namespace, a Service, a Deployment, and a
//! CustomResourceDefinition with one object of its kind.

/// The namespace every manifest here lives in.
pub const NS: &str = "erp-system";

pub const NAMESPACE_YAML: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: erp-system
  labels:
    erp.example.com/environment: staging
";

pub const SERVICE_YAML: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: reporting
  namespace: erp-system
  labels:
    app.kubernetes.io/name: reporting
    app.kubernetes.io/part-of: erp
spec:
  selector:
    app.kubernetes.io/name: reporting
  ports:
  - name: http
    port: 80
";

/// The ERP reporting service, ready 200ms after each pod starts (instead of the default 1s).
pub fn deployment_yaml(image: &str, replicas: u32) -> String {
    format!(
        "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: reporting
  namespace: erp-system
  labels:
    app.kubernetes.io/name: reporting
    app.kubernetes.io/part-of: erp
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app.kubernetes.io/name: reporting
  template:
    metadata:
      labels:
        app.kubernetes.io/name: reporting
        app.kubernetes.io/part-of: erp
      annotations:
        sandbox.sluice.dev/ready-after: 200ms
    spec:
      containers:
      - name: reporting
        image: {image}
        ports:
        - name: http
          containerPort: 8080
"
    )
}

pub const CRD_YAML: &str = "\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: reportschedules.erp.sluice.dev
spec:
  group: erp.sluice.dev
  scope: Namespaced
  names:
    kind: ReportSchedule
    listKind: ReportScheduleList
    plural: reportschedules
    singular: reportschedule
    shortNames: [rsched]
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              report: {type: string}
              schedule: {type: string}
              format: {type: string}
    additionalPrinterColumns:
    - name: Report
      type: string
      jsonPath: .spec.report
    - name: Format
      type: string
      jsonPath: .spec.format
";

pub fn report_schedule_yaml(format: &str) -> String {
    format!(
        "\
apiVersion: erp.sluice.dev/v1alpha1
kind: ReportSchedule
metadata:
  name: month-end-close
  namespace: erp-system
spec:
  report: general-ledger
  schedule: \"0 2 1 * *\"
  format: {format}
"
    )
}
