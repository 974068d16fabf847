//! The `aws`, `sql` and `origin` parts: what AWS call a span made, what database it
//! queried, and what AWS resource the service runs on.

use aurastream_proto::xray::{
    AwsData, BeanstalkData, Ec2Data, EcsData, EksData, LogGroupData, SqlData, XrayData,
};

use super::attrs::Attrs;
use crate::aws::cloudwatch_logs::template::{Attributes, Template};

/// The launch type of an ECS task (`ec2` | `fargate`): `aws.ecs.launchtype` is the
/// semantic-convention (and ADOT) name; `aws.ecs.launch_type` is what this translator read
/// before, still accepted.
const ECS_LAUNCH_TYPE: [&str; 2] = ["aws.ecs.launchtype", "aws.ecs.launch_type"];

/// `db.system` values that speak SQL and get an X-Ray `sql` block.
const SQL_SYSTEMS: &[&str] = &[
    "adabas",
    "cache",
    "cockroachdb",
    "db2",
    "derby",
    "edb",
    "firebird",
    "h2",
    "hanadb",
    "hive",
    "hsqldb",
    "informix",
    "ingres",
    "interbase",
    "intersystems_cache",
    "mariadb",
    "maxdb",
    "mssql",
    "mysql",
    "netezza",
    "oracle",
    "other_sql",
    "pervasive",
    "pointbase",
    "postgresql",
    "progress",
    "redshift",
    "spanner",
    "sqlite",
    "sybase",
    "teradata",
    "trino",
    "vertica",
];

/// Whether the span is a call through an AWS SDK.
pub(crate) fn is_aws_call(attrs: &Attrs<'_>) -> bool {
    attrs.peek("rpc.system") == Some("aws-api") || attrs.peek("aws.service").is_some()
}

/// The AWS service an AWS SDK call went to (`DynamoDB`, `S3`, ...).
pub(crate) fn aws_service<'a>(attrs: &Attrs<'a>) -> Option<&'a str> {
    attrs.first_str(&["aws.service", "rpc.service"])
}

/// `origin` from `cloud.platform` and, on ECS, the launch type (as ADOT maps them).
pub(crate) fn origin(attrs: &Attrs<'_>) -> Option<&'static str> {
    Some(match attrs.res("cloud.platform")? {
        "aws_lambda" => "AWS::Lambda::Function",
        "aws_ecs" => match launch_type(attrs) {
            Some(t) if t.eq_ignore_ascii_case("fargate") => "AWS::ECS::Fargate",
            Some(t) if t.eq_ignore_ascii_case("ec2") => "AWS::ECS::EC2",
            _ => "AWS::ECS::Container",
        },
        "aws_ec2" => "AWS::EC2::Instance",
        "aws_eks" => "AWS::EKS::Container",
        "aws_elastic_beanstalk" => "AWS::ElasticBeanstalk::Environment",
        "aws_app_runner" => "AWS::AppRunner::Service",
        _ => return None,
    })
}

fn launch_type<'a>(attrs: &Attrs<'a>) -> Option<&'a str> {
    ECS_LAUNCH_TYPE.iter().find_map(|k| attrs.res(k))
}

/// The `aws` block. Segments describe where the service runs (resource attributes);
/// subsegments of AWS SDK calls describe the call.
pub(crate) fn aws(
    attrs: &Attrs<'_>,
    is_segment: bool,
    aws_call: bool,
    log_groups: &[Template],
) -> Option<AwsData> {
    let mut data = AwsData::default();
    if aws_call {
        // Set when the call went to another account than the application's own.
        data.account_id = attrs.str("aws.account_id").map(str::to_owned);
        data.operation = attrs
            .first_str(&["aws.operation", "rpc.method"])
            .map(str::to_owned);
        data.region = attrs
            .str("aws.region")
            .or_else(|| attrs.res("cloud.region"))
            .map(str::to_owned);
        data.queue_url = attrs
            .first_str(&["aws.sqs.queue_url", "aws.queue_url", "messaging.url"])
            .map(str::to_owned);
        let mut tables = attrs.str_list("aws.dynamodb.table_names");
        if tables.is_empty()
            && let Some(t) = attrs.str("aws.table_name")
        {
            tables.push(t.to_owned());
        }
        if tables.len() == 1 {
            data.table_name = tables.pop();
        } else {
            data.table_names = tables;
        }
    }
    data.request_id = attrs
        .first_str(&["aws.request_id", "aws.requestId"])
        .or_else(|| {
            is_segment
                .then(|| attrs.first_str(&["faas.invocation_id", "faas.execution"]))
                .flatten()
        })
        .map(str::to_owned);
    if is_segment {
        resource_context(attrs, log_groups, &mut data);
    }
    (data != AwsData::default()).then_some(data)
}

/// Where the service runs, from the resource: account, EC2 / ECS / EKS / Beanstalk /
/// Lambda details, log groups and the SDK that produced the spans.
///
/// The log groups (`aws.cloudwatch_logs`) let the X-Ray console show a trace's log lines:
/// it searches them for the trace id. They come from the resource's `aws.log.group.names`
/// (and `aws.log.group.arns`), else from `log_groups`: the exporter's `aws_log_groups`, or
/// the logs exporters' routing, as templates filled from the resource (a group whose
/// template needs an attribute the resource lacks is left out: it is not known to be one
/// the service writes to).
fn resource_context(attrs: &Attrs<'_>, log_groups: &[Template], data: &mut AwsData) {
    let res = |k: &str| attrs.res(k).map(str::to_owned);
    data.account_id = res("cloud.account.id").or(data.account_id.take());
    match attrs.res("cloud.platform") {
        Some("aws_ec2") => {
            data.ec2 = Some(Ec2Data {
                instance_id: res("host.id"),
                availability_zone: res("cloud.availability_zone"),
                instance_size: res("host.type"),
                ami_id: res("host.image.id"),
            });
        }
        Some("aws_ecs") => {
            data.ecs = Some(EcsData {
                container: res("container.name").or_else(|| res("host.name")),
                container_id: res("container.id"),
                container_arn: res("aws.ecs.container.arn"),
                cluster: res("aws.ecs.cluster.arn"),
                task_arn: res("aws.ecs.task.arn"),
                task_family: res("aws.ecs.task.family"),
                launch_type: launch_type(attrs).map(str::to_owned),
            });
        }
        Some("aws_eks") => {
            data.eks = Some(EksData {
                cluster_name: res("k8s.cluster.name"),
                pod: res("k8s.pod.name"),
                container_id: res("container.id"),
            });
        }
        Some("aws_elastic_beanstalk") => {
            data.elastic_beanstalk = Some(BeanstalkData {
                environment_name: res("service.namespace"),
                version_label: res("service.version"),
                deployment_id: attrs.res_int("service.instance.id"),
            });
        }
        Some("aws_lambda") => {
            data.function_arn = res("cloud.resource_id").or_else(|| res("faas.id"));
            data.resource_names = res("faas.name").into_iter().collect();
        }
        _ => {}
    }
    let names = attrs.res_list("aws.log.group.names");
    let arns = attrs.res_list("aws.log.group.arns");
    data.cloudwatch_logs = if names.is_empty() {
        let resource = Attributes::resource(attrs.resource_attributes());
        let mut groups: Vec<String> = log_groups
            .iter()
            .filter_map(|t| t.render_known(&resource))
            .collect();
        groups.sort();
        groups.dedup();
        groups
            .into_iter()
            .map(|log_group| LogGroupData {
                log_group,
                arn: None,
            })
            .collect()
    } else {
        names
            .into_iter()
            .enumerate()
            .map(|(i, log_group)| LogGroupData {
                log_group,
                arn: arns.get(i).cloned(),
            })
            .collect()
    };
    if let Some(sdk) = attrs.res("telemetry.sdk.name") {
        let language = attrs.res("telemetry.sdk.language").unwrap_or("unknown");
        data.xray = Some(XrayData {
            sdk: Some(format!("{sdk} for {language}")),
            sdk_version: res("telemetry.sdk.version"),
            auto_instrumentation: attrs.res("telemetry.auto.version").is_some()
                || attrs.res("telemetry.distro.name").is_some(),
        });
    }
}

/// The SQL database a span queried, if its `db.system` speaks SQL.
pub(crate) fn sql(attrs: &Attrs<'_>) -> Option<SqlData> {
    let system = attrs
        .peek("db.system.name")
        .or_else(|| attrs.peek("db.system"))?;
    if !SQL_SYSTEMS.contains(&system) {
        return None;
    }
    let system = attrs.first_str(&["db.system.name", "db.system"]);
    let database = attrs.first_str(&["db.namespace", "db.name"]);
    let url = attrs
        .str("db.connection_string")
        .map(str::to_owned)
        .or_else(|| {
            let host = attrs.first_str(&["server.address", "net.peer.name"])?;
            let port = attrs
                .first_int(&["server.port", "net.peer.port"])
                .map(|p| format!(":{p}"))
                .unwrap_or_default();
            let db = database.map(|d| format!("/{d}")).unwrap_or_default();
            Some(format!("{host}{port}{db}"))
        });
    Some(SqlData {
        url,
        sanitized_query: attrs
            .first_str(&["db.query.text", "db.statement"])
            .map(str::to_owned),
        database_type: system.map(str::to_owned),
        database_version: None,
        user: attrs.str("db.user").map(str::to_owned),
    })
}
