using System.Reflection;
using LinqToDB;
using LinqToDB.Remote;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace Linq2DbTestKit.AspNetCore;

/// <summary>
/// Replaces an application's linq2db registrations with ones bound to the test scope of the current request, however
/// the application registered them: with <c>AddLinqToDBContext</c>'s descriptors or with plain factories.
/// </summary>
internal static class LinqToDBRegistrations
{
    public static void BindToTestScopes(IServiceCollection services)
    {
        var bound = 0;
        for (var i = 0; i < services.Count; i++)
        {
            if (!services[i].IsKeyedService && Replacement(services[i]) is { } replacement)
            {
                services[i] = replacement;
                bound++;
            }
        }

        services.AddScoped<RequestScope>();
        services.AddSingleton(new RegistrationsBound(bound));
        services.Insert(0, ServiceDescriptor.Singleton<IStartupFilter, RequestScopeStartupFilter>());
    }

    static ServiceDescriptor? Replacement(ServiceDescriptor descriptor)
    {
        var type = descriptor.ServiceType;
        if (type == typeof(DataOptions))
            return new ServiceDescriptor(type, provider => RequestScope.Of(provider, type) is { } scope
                ? scope.Bind((DataOptions)Original(descriptor, provider))
                : Original(descriptor, provider), ServiceLifetime.Scoped);

        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(DataOptions<>))
        {
            var options = type.GetProperty(nameof(DataOptions<>.Options))!;
            return new ServiceDescriptor(type, provider => RequestScope.Of(provider, type) is { } scope
                ? Activator.CreateInstance(type, scope.Bind((DataOptions)options.GetValue(Original(descriptor, provider))!))!
                : Original(descriptor, provider), ServiceLifetime.Scoped);
        }

        // AddLinqToDBContext's factory resolves the context from the provider it is given: a scoped one, once it is scoped itself.
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(IDataContextFactory<>))
            return descriptor is { Lifetime: ServiceLifetime.Singleton, ImplementationFactory: { } factory } ? new ServiceDescriptor(type, factory, ServiceLifetime.Scoped) : null;

        if (typeof(IDataContext).IsAssignableFrom(type))
            return new ServiceDescriptor(type, provider => Context(descriptor, provider), descriptor.Lifetime == ServiceLifetime.Singleton ? ServiceLifetime.Scoped : descriptor.Lifetime);

        return null;
    }

    static object Original(ServiceDescriptor descriptor, IServiceProvider provider) =>
        descriptor.ImplementationInstance
        ?? descriptor.ImplementationFactory?.Invoke(provider)
        ?? ActivatorUtilities.CreateInstance(provider, descriptor.ImplementationType!);

    /// <summary>
    /// The application's context as the application builds it. When it was built from the container's options it is
    /// bound already; when the application built its options itself, it is rebuilt on the same options, bound.
    /// </summary>
    static object Context(ServiceDescriptor descriptor, IServiceProvider provider)
    {
        var scope = RequestScope.Of(provider, descriptor.ServiceType);
        var context = (IDataContext)Original(descriptor, provider);
        if (scope is null || TestScope.IsBound(context.Options))
            return context;

        var rebuilt = Rebuild(context.GetType(), scope.Bind(context.Options), provider);
        if (descriptor.ImplementationInstance is null)
            context.Dispose();
        return rebuilt;
    }

    static object Rebuild(Type contextType, DataOptions options, IServiceProvider provider)
    {
        foreach (var constructor in contextType.GetConstructors(BindingFlags.Public | BindingFlags.Instance))
        {
            foreach (var parameter in constructor.GetParameters())
            {
                if (parameter.ParameterType == typeof(DataOptions))
                    return ActivatorUtilities.CreateInstance(provider, contextType, options);
                if (parameter.ParameterType.IsGenericType && parameter.ParameterType.GetGenericTypeDefinition() == typeof(DataOptions<>))
                    return ActivatorUtilities.CreateInstance(provider, contextType, Activator.CreateInstance(parameter.ParameterType, options)!);
            }
        }

        throw new InvalidOperationException(
            $"{contextType} builds its own linq2db options, and has no public constructor taking DataOptions or DataOptions<T> through which " +
            "the kit could give it the test scope's. Add such a constructor (AddLinqToDBContext requires one too), or register its options in the container.");
    }
}
